#pragma once
// The journal benchmark (docs/journal.md), as `ffe bench journal` and ffe_journal_bench run
// it: commits/s and p50/p99 commit latency at 1, 16, 256 and 4096 commands per synced
// batch beside the raw RocksDB ceiling, restart time, and the cost of old-revision reads.
// Prints one JSON object on stdout; progress goes to stderr. Never asserts on time.

namespace ffe::bench {

// argv[0] is the program name; the flags are those listed in journal_bench.cc's header.
// Returns the process exit code.
int journal_bench_main(int argc, char** argv);

}  // namespace ffe::bench
