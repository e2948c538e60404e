// `conveyor user add|del|list --users <file> ...`: maintains the users file, as htpasswd or
// `rabbitmqctl add_user` do. Exit status 0 done, 1 refused (no such user, unreadable or
// malformed file, write failure), 2 usage.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace conveyor::auth {

// `args` follow the word `user`. `--password -` reads the password's first line from `in`.
int user_main(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
              std::ostream& err);
int user_main(const std::vector<std::string>& args);

}  // namespace conveyor::auth
