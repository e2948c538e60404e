// The in-process handlers of `--builtin echo|sleep|fail` (and `builtin` routes of --handlers),
// for tests and benchmarks.
#pragma once

#include <conveyor/client/worker_types.hpp>

#include <string_view>

namespace conveyor::worker {

// echo: succeeds with the payload as the result.
// sleep: sleeps <payload> ms, then succeeds with the payload; a soft stop (time limit,
//        cancellation, shutdown) ends the sleep at once with a failure; a payload that is not
//        a number of milliseconds fails without retry.
// fail:  always fails (retried per the task's policy).
// Returns an empty handler for any other name.
client::task_handler make_builtin(std::string_view name);

}  // namespace conveyor::worker
