#include "tests/storage/test_support.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "events/assert.h"

namespace ffe::storage::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/ffe-journal-test-XXXXXX";
  FFE_ASSERT(::mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code error;
  std::filesystem::remove_all(path_, error);
}

namespace {
std::int64_t parse_int(std::string_view text) {
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  FFE_ASSERT(error == std::errc() && end == text.data() + text.size(), "CounterFolder: not a number");
  return value;
}
}  // namespace

std::string CounterFolder::state(std::int64_t count, std::int64_t sum) {
  return "n=" + std::to_string(count) + ";s=" + std::to_string(sum);
}

std::string CounterFolder::fold(std::string_view, std::optional<std::string_view> snapshot,
                                std::span<const std::string_view> events) {
  std::int64_t count = 0, sum = 0;
  if (snapshot) {
    auto separator = snapshot->find(';');
    FFE_ASSERT(snapshot->starts_with("n=") && separator != std::string_view::npos, "CounterFolder: bad snapshot");
    count = parse_int(snapshot->substr(2, separator - 2));
    sum = parse_int(snapshot->substr(separator + 3));
    calls_with_snapshot.fetch_add(1);
  }
  for (auto event : events) {
    ++count;
    sum += parse_int(event);
  }
  calls.fetch_add(1);
  events_folded.fetch_add(events.size());
  std::uint64_t seen = max_events_per_call.load();
  while (events.size() > seen && !max_events_per_call.compare_exchange_weak(seen, events.size())) {
  }
  return state(count, sum);
}

void CounterFolder::reset_counts() {
  calls = 0;
  events_folded = 0;
  max_events_per_call = 0;
  calls_with_snapshot = 0;
}

CommitRequest one_event(ShardId shard, std::string entity, std::int64_t delta, std::optional<InputPosition> input) {
  CommitRequest request;
  request.shard = shard;
  request.events.push_back(Event{std::move(entity), std::to_string(delta)});
  request.input = std::move(input);
  return request;
}

Revision commit_ok(Journal& journal, CommitRequest request) {
  CommitResult result = journal.commit(std::move(request)).get();
  if (!result.status) {
    std::fprintf(stderr, "commit failed: %s\n", result.status.to_string().c_str());
    FFE_ASSERT(false, "commit_ok: the commit failed");
  }
  return result.revision;
}

std::vector<std::string> files_with_suffix(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    std::string name = entry.path().string();
    if (entry.is_regular_file() && name.ends_with(suffix)) out.push_back(name);
  }
  return out;
}

void flip_bytes(const std::string& path, std::optional<std::size_t> offset, std::size_t count) {
  int fd = ::open(path.c_str(), O_RDWR);
  FFE_ASSERT(fd >= 0, "flip_bytes: open failed");
  off_t size = ::lseek(fd, 0, SEEK_END);
  std::size_t at = offset ? *offset : static_cast<std::size_t>(size) / 2;
  std::string bytes(count, '\0');
  ssize_t got = ::pread(fd, bytes.data(), count, static_cast<off_t>(at));
  FFE_ASSERT(got > 0, "flip_bytes: read failed");
  for (auto& byte : bytes) byte = static_cast<char>(byte ^ 0xff);
  FFE_ASSERT(::pwrite(fd, bytes.data(), static_cast<std::size_t>(got), static_cast<off_t>(at)) == got,
             "flip_bytes: write failed");
  ::fsync(fd);
  ::close(fd);
}

Child spawn_child(const std::string& program, const std::vector<std::string>& args) {
  int to_child[2], from_child[2];
  FFE_ASSERT(::pipe2(to_child, O_CLOEXEC) == 0 && ::pipe2(from_child, O_CLOEXEC) == 0, "pipe2 failed");
  std::vector<std::string> argv_strings = {program};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  FFE_ASSERT(pid >= 0, "fork failed");
  if (pid == 0) {
    ::dup2(to_child[0], STDIN_FILENO);
    ::dup2(from_child[1], STDOUT_FILENO);
    ::execv(program.c_str(), argv.data());
    std::_Exit(127);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  Child child;
  child.pid = pid;
  child.stdin_fd = to_child[1];
  child.stdout_fd = from_child[0];
  return child;
}

std::optional<std::string> read_line(Child& child, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    auto newline = child.buffered.find('\n');
    if (newline != std::string::npos) {
      std::string line = child.buffered.substr(0, newline);
      child.buffered.erase(0, newline + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd fd{child.stdout_fd, POLLIN, 0};
    int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
    if (ready <= 0) continue;
    char buffer[65536];
    ssize_t n = ::read(child.stdout_fd, buffer, sizeof buffer);
    if (n <= 0) return std::nullopt;  // EOF
    child.buffered.append(buffer, static_cast<std::size_t>(n));
  }
}

std::vector<std::string> read_remaining_lines(Child& child) {
  char buffer[65536];
  while (true) {
    ssize_t n = ::read(child.stdout_fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    child.buffered.append(buffer, static_cast<std::size_t>(n));
  }
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t i = 0; i < child.buffered.size(); ++i) {
    if (child.buffered[i] == '\n') {
      lines.push_back(child.buffered.substr(start, i - start));
      start = i + 1;
    }
  }
  child.buffered.erase(0, start);  // a torn last line is not a line
  return lines;
}

int wait_child(Child& child) {
  if (child.stdin_fd >= 0) ::close(child.stdin_fd);
  child.stdin_fd = -1;
  int status = 0;
  while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (child.stdout_fd >= 0) ::close(child.stdout_fd);
  child.stdout_fd = -1;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace ffe::storage::testing
