#pragma once
// The spellings Python callers use for layout forms and storage kinds.
#include <optional>
#include <string>
#include <utility>

#include "kvbm/layout/layout.hpp"

namespace kvbm::python {

// "fully_contiguous" (or "fc"), "layer_separate" (or "ls"); with `order` "block" or "outer"
// (layer-separate only). Also the CLI's "ls-block" and "ls-outer". InvalidArgument names the text.
[[nodiscard]] std::pair<LayoutForm, LayerOrder> parse_form(const std::string& form, const std::optional<std::string>& order);

// "system", "pinned", "device:0", "disk:3": StorageKind::to_string's seed spelling is for logs.
[[nodiscard]] std::string kind_name(StorageKind kind);

}  // namespace kvbm::python
