#pragma once
// Runs `promtool check metrics` (Debian's prometheus package) on a /metrics text, for the
// metrics and HTTP tests. No gtest here.

#include <string>
#include <string_view>

namespace ffe::metrics::testing {

bool promtool_available();

struct PromtoolResult {
  int exit_code = -1;  // 0: the text parsed and passed every lint
  std::string output;  // promtool's stdout and stderr (the problems it found)
};
PromtoolResult promtool_check(std::string_view metrics_text);

}  // namespace ffe::metrics::testing
