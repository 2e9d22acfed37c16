#include "layout_form.hpp"

#include <fmt/format.h>

#include "kvbm/common/error.hpp"

namespace kvbm::python {

std::pair<LayoutForm, LayerOrder> parse_form(const std::string& form, const std::optional<std::string>& order) {
  LayerOrder layer_order = LayerOrder::BlockContiguous;
  if (order) {
    if (*order == "block") layer_order = LayerOrder::BlockContiguous;
    else if (*order == "outer") layer_order = LayerOrder::OuterContiguous;
    else throw Error(ErrorCode::InvalidArgument, fmt::format("order='{}' is not 'block' or 'outer'", printable(*order)));
  }
  if (form == "fully_contiguous" || form == "fc") {
    if (order) throw Error(ErrorCode::InvalidArgument, "order applies to layer_separate layouts only");
    return {LayoutForm::FullyContiguous, LayerOrder::BlockContiguous};
  }
  if (form == "layer_separate" || form == "ls") return {LayoutForm::LayerSeparate, layer_order};
  if (form == "ls-block" || form == "ls-outer") {
    if (order) throw Error(ErrorCode::InvalidArgument, fmt::format("form='{}' already names its order", form));
    return {LayoutForm::LayerSeparate, form == "ls-block" ? LayerOrder::BlockContiguous : LayerOrder::OuterContiguous};
  }
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("form='{}' is not one of fully_contiguous, layer_separate, fc, ls, ls-block, ls-outer",
                          printable(form)));
}

std::string kind_name(StorageKind kind) {
  switch (kind.type()) {
    case StorageKind::Type::System: return "system";
    case StorageKind::Type::Pinned: return "pinned";
    case StorageKind::Type::Device: return fmt::format("device:{}", kind.index());
    case StorageKind::Type::Disk: return fmt::format("disk:{}", kind.index());
  }
  return "unknown";
}

}  // namespace kvbm::python
