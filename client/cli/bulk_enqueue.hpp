// `conveyor enqueue <queue> --lines FILE`: one task per line, pipelined on one connection.
#pragma once

#include "cli_run.hpp"

#include <conveyor/client/types.hpp>

#include <string>

namespace conveyor::cli {

struct bulk_job {
    std::string queue;
    std::string path;                 // "-" for stdin
    client::enqueue_options options;  // the same for every line (no id)
    bool print_ids = false;
};

// Enqueues every line of job.path (the bytes between newlines, the newline excluded; a last
// line without one counts) and reports "enqueued N tasks ..." on stderr; with print_ids the
// ids go to stdout, one per line, in file order. Stops at the first refused line (exit 1,
// naming the line). A progress bar is drawn on stderr when stderr is a terminal.
int run_bulk_enqueue(const cli_context& ctx, const bulk_job& job);

}  // namespace conveyor::cli
