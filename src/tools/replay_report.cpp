#include "replay_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <fstream>

#include "common/make_error.hpp"

namespace kvbm::tools {
namespace {

constexpr std::array<const char*, 3> kTiers = {"device", "host", "disk"};
constexpr std::array<const char*, 3> kTierColours = {"#1b6ca8", "#f28e2b", "#59a14f"};

std::size_t hits_of(const nlohmann::ordered_json& run, const char* tier) { return run["hits"][tier].get<std::size_t>(); }

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

}  // namespace

void print_policy_table(std::ostream& out, const std::vector<nlohmann::ordered_json>& runs) {
  const bool bound = !runs.empty() && runs.front().contains("offline_bound");
  out << fmt::format("{:<17} {:>10} {:>10} {:>10} {:>10} {:>14} {:>9} {:>8}\n", "policy", "device", "host", "disk", "misses",
                     "tokens saved", bound ? "top/bound" : "", "wall s");
  for (const auto& run : runs) {
    out << fmt::format("{:<17} {:>10} {:>10} {:>10} {:>10} {:>14} {:>9} {:>8.2f}\n", run["policy"].get<std::string>(),
                       hits_of(run, "device"), hits_of(run, "host"), hits_of(run, "disk"), run["misses"].get<std::size_t>(),
                       run["prefill_tokens_saved"].get<std::size_t>(),
                       bound ? fmt::format("{:.3f}", run["offline_bound"]["share"].get<double>()) : "",
                       run["wall_seconds"].get<double>());
  }
  if (bound) {
    out << fmt::format("top/bound: top-tier hits of the policy alone over Belady's {} (top tier alone, same rules)\n",
                       runs.front()["offline_bound"]["belady_hits"].get<std::size_t>());
  }
}

void write_policy_plot(const std::string& path, const std::string& title, const std::vector<nlohmann::ordered_json>& runs) {
  const bool bound = !runs.empty() && runs.front().contains("offline_bound");
  constexpr double kPanelWidth = 460, kPanelHeight = 300, kLeft = 70, kTop = 50, kBottom = 90;
  const double width = kLeft + (bound ? 2 : 1) * (kPanelWidth + kLeft);
  const double height = kTop + kPanelHeight + kBottom;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n<text x=\"{2}\" y=\"22\" font-size=\"15\">{3}</text>\n",
      width, height, kLeft, escape(title));
  const double slot = runs.empty() ? 1 : kPanelWidth / static_cast<double>(runs.size());
  const double bar = slot * 0.6;
  const auto axis = [&](double x0, const std::string& label, double top_value, const char* format) {
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"black\"/>\n", x0, kTop, kTop + kPanelHeight);
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n", x0, kTop + kPanelHeight,
                       x0 + kPanelWidth);
    for (int tick = 0; tick <= 4; ++tick) {
      const double y = kTop + kPanelHeight - kPanelHeight * tick / 4.0;
      svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", x0 - 4, y + 4,
                         fmt::format(fmt::runtime(format), top_value * tick / 4.0));
      svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#ddd\"/>\n", x0, y, x0 + kPanelWidth);
    }
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", x0, kTop - 8, escape(label));
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const double x = x0 + slot * (static_cast<double>(i) + 0.5);
      svg += fmt::format("<text x=\"{0}\" y=\"{1}\" text-anchor=\"end\" transform=\"rotate(-35 {0} {1})\">{2}</text>\n", x,
                         kTop + kPanelHeight + 14, escape(runs[i]["policy"].get<std::string>()));
    }
  };

  // Panel 1: hits per tier, stacked.
  std::size_t most = 1;
  for (const auto& run : runs) most = std::max(most, hits_of(run, "device") + hits_of(run, "host") + hits_of(run, "disk"));
  axis(kLeft, "hits per tier (blocks)", static_cast<double>(most), "{:.0f}");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    double y = kTop + kPanelHeight;
    for (std::size_t t = 0; t < kTiers.size(); ++t) {
      const double h = kPanelHeight * static_cast<double>(hits_of(runs[i], kTiers[t])) / static_cast<double>(most);
      y -= h;
      svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
                         kLeft + slot * static_cast<double>(i) + (slot - bar) / 2, y, bar, h, kTierColours[t]);
    }
  }
  for (std::size_t t = 0; t < kTiers.size(); ++t) {  // the legend, in a row above the panel
    const double x = kLeft + kPanelWidth - 210 + 70 * static_cast<double>(t);
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
                       x, kTop - 18, kTierColours[t], x + 14, kTop - 8, kTiers[t]);
  }
  // Panel 2: the top tier's share of Belady's bound.
  if (bound) {
    const double x0 = kLeft * 2 + kPanelWidth;
    axis(x0, "top-tier hits / Belady's offline bound", 1.0, "{:.2f}");
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const double share = std::clamp(runs[i]["offline_bound"]["share"].get<double>(), 0.0, 1.0);
      const double x = x0 + slot * static_cast<double>(i) + (slot - bar) / 2;
      svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#4e79a7\"/>\n", x,
                         kTop + kPanelHeight * (1 - share), bar, kPanelHeight * share);
      svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:.2f}</text>\n", x + bar / 2,
                         kTop + kPanelHeight * (1 - share) - 4, share);
    }
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#c00\" stroke-dasharray=\"5,4\"/>\n", x0,
                       kTop + kPanelHeight / 2, x0 + kPanelWidth);
  }
  svg += "</svg>\n";
  std::ofstream file(path);
  file << svg;
  if (!file) throw make_error(ErrorCode::Io, "cannot write the plot {}", printable(path));
}

}  // namespace kvbm::tools
