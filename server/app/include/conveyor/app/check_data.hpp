#pragma once

#include <string>
#include <vector>

namespace conveyor::server {

// `conveyor check-data [--repair] <dir>`: checks (or repairs) the log segments of a data
// directory without starting the broker. Returns the process exit status:
//   0  clean, or only a torn tail in the newest segment (start-up cuts it), or repaired
//   1  damage found (stderr names the file and byte offset), or the repair failed
//   2  usage error, or the directory or a segment could not be read
int check_data_main(const std::vector<std::string>& args);

}  // namespace conveyor::server
