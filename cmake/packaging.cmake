# Install rules and the Debian package (docs/install.md).
#
#   make install [PREFIX=/usr/local]  cmake --install of the `server` component: the binary to
#                                     <prefix>/bin, the unit to <prefix>/lib/systemd/system,
#                                     the config file to CONVEYOR_CONF_DIR, docs and examples
#                                     to <prefix>/share/doc/conveyor
#   make package                      cpack: build/conveyor_<version>_<arch>.deb, prefix /usr,
#                                     the same component, with the maintainer scripts in
#                                     packaging/debian/
# The client library's own rules (client/CMakeLists.txt) are another component and stay out
# of both.
include(GNUInstallDirs)
# cpack runs the `preinstall` target first, which otherwise builds every target (the tests
# too); the package needs only the binary, which make package builds.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

set(CONVEYOR_CONF_DIR "/etc/conveyor" CACHE PATH
    "Where make install and the package put conveyor.conf (absolute)")

install(TARGETS conveyor RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT server)
install(CODE "set(CONVEYOR_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
set(CONVEYOR_CONF_DIR \"${CONVEYOR_CONF_DIR}\")" COMPONENT server)
install(SCRIPT ${PROJECT_SOURCE_DIR}/cmake/install-service.cmake COMPONENT server)
install(FILES README.md docs/install.md docs/worker.md docs/cli.md docs/users.md
        conf/handlers.conf conf/users.example
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT server)
install(FILES examples/handler.py examples/send_email.py examples/run-task.sh
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT server)

set(CPACK_PACKAGE_NAME conveyor)
set(CPACK_PACKAGE_VENDOR "Conveyor")
set(CPACK_PACKAGE_CONTACT "Conveyor maintainers <conveyor@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "task broker speaking the Redis protocol and AMQP 0-9-1")
set(CPACK_PACKAGE_DESCRIPTION
    "A task broker and worker runtime in one binary: conveyor server speaks RESP2/RESP3 \
and AMQP 0-9-1 lite, with leases, retries, dead letters and a durable log; conveyor worker \
runs tasks; the CLI enqueues and inspects them.")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# /etc/conveyor is an absolute destination: stage the install under DESTDIR so that it lands
# in the package, never in the build machine's /etc.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL server)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "file:///usr/share/doc/conveyor/README.md")
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
# useradd (postinst) is in passwd; the shared libraries come from dpkg-shlibdeps when it is
# installed (dpkg-dev), else from the list below (what `ldd conveyor` shows on Debian 12).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd")
find_program(DPKG_SHLIBDEPS dpkg-shlibdeps)
if(DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "passwd, libc6 (>= 2.36), libstdc++6 (>= 12), libgcc-s1, libssl3 (>= 3.0), \
libspdlog1.10, libfmt9, libboost-json1.81.0, libboost-program-options1.81.0")
endif()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
