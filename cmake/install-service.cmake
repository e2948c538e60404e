# Run by `cmake --install` (install(SCRIPT) in cmake/packaging.cmake): installs the
# configuration file and the systemd unit, rewritten for where they land:
#   conveyor.conf     data-dir /var/lib/conveyor (the unit's StateDirectory) instead of ./data
#   conveyor.service  ExecStart naming <prefix>/bin/conveyor and the installed config file,
#                     Documentation naming <prefix>/share/doc/conveyor
# Expects CONVEYOR_SOURCE_DIR and CONVEYOR_CONF_DIR (absolute) set by the caller;
# CMAKE_INSTALL_PREFIX and DESTDIR are those of the install being run (cpack stages with both).
set(conf_file "${CONVEYOR_CONF_DIR}/conveyor.conf")

file(READ "${CONVEYOR_SOURCE_DIR}/conf/conveyor.conf" conf)
string(REGEX REPLACE "\ndata-dir [^\n]*" "\ndata-dir /var/lib/conveyor" conf "${conf}")
string(REPLACE "--config conf/conveyor.conf" "--config ${conf_file}" conf "${conf}")

file(READ "${CONVEYOR_SOURCE_DIR}/conf/conveyor.service" unit)
string(REPLACE "/usr/bin/conveyor server --config /etc/conveyor/conveyor.conf"
       "${CMAKE_INSTALL_PREFIX}/bin/conveyor server --config ${conf_file}" unit "${unit}")
string(REPLACE "file:///usr/share/doc/conveyor/"
       "file://${CMAKE_INSTALL_PREFIX}/share/doc/conveyor/" unit "${unit}")

set(conf_dest "$ENV{DESTDIR}${CONVEYOR_CONF_DIR}")
set(unit_dest "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
foreach(pair "conveyor.conf|${conf_dest}|conf" "conveyor.service|${unit_dest}|unit")
  string(REPLACE "|" ";" pair "${pair}")
  list(GET pair 0 name)
  list(GET pair 1 dest)
  list(GET pair 2 var)
  message(STATUS "Installing: ${dest}/${name}")
  file(MAKE_DIRECTORY "${dest}")
  file(WRITE "${dest}/${name}" "${${var}}")
  file(CHMOD "${dest}/${name}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${dest}/${name}")
endforeach()
