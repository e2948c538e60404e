// Compiled by tests/CMakeLists.txt ("include rules") with the include directories of one room:
// no room but app itself may include app.
#include <conveyor/app/listener.hpp>
