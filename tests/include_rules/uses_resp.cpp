// Compiled by tests/CMakeLists.txt ("include rules") with the include directories of one room:
// a front end (amqp) or the runtime must fail at this line, app must compile it.
#include <conveyor/resp/commands.hpp>
