// Turning task bytes (results, errors, names: any bytes) into text that fits one output line
// or one JSON string.
#pragma once

#include <string>
#include <string_view>

namespace conveyor::cli {

// `bytes` on one line: valid UTF-8 passes unchanged, except that a backslash becomes "\\",
// control characters become \n, \r, \t or \xNN, and each byte that is not part of valid
// UTF-8 becomes \xNN.
std::string escape_for_line(std::string_view bytes);

}  // namespace conveyor::cli
