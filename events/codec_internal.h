#pragma once
// codec.cc's switches for tests and benchmarks, not for production code: the tests compare
// the JSON fast path (json_reader.h) against the full path on the same bytes, and
// `ffe bench e2e --json-full-path` measures what the fast path saves.

#include <cstdint>

namespace ffe::events::internal {

// Whether decode() may answer JSON with the fast path, in the whole process (default true).
// Off, every JSON decode takes the full path, as before the fast path existed.
void set_json_fast_path(bool enabled);

// How many JSON decodes on the calling thread the fast path answered, since it started.
std::uint64_t json_fast_path_decodes();

}  // namespace ffe::events::internal
