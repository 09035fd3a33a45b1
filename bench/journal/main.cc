// ffe_journal_bench: the journal benchmark as a standalone binary (`ffe bench journal` is
// the same code behind the ffe command line).
#include "bench/journal/journal_bench.h"

int main(int argc, char** argv) { return ffe::bench::journal_bench_main(argc, argv); }
