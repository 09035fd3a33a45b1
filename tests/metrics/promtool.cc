#include "tests/metrics/promtool.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace ffe::metrics::testing {

bool promtool_available() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

PromtoolResult promtool_check(std::string_view metrics_text) {
  PromtoolResult result;
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/ffe-promtool-" +
                           std::to_string(::getpid()) + ".txt";
  {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file << metrics_text;
  }
  const std::string command = "promtool check metrics < '" + path + "' 2>&1";
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
    const int status = ::pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::remove(path.c_str());
  return result;
}

}  // namespace ffe::metrics::testing
