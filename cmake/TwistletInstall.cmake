include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_twistlet_targets twistlet)
if(TARGET twistlet_actor)
  list(APPEND _twistlet_targets twistlet_actor)
endif()
install(TARGETS ${_twistlet_targets} EXPORT twistletTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/twistlet DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT twistletTargets NAMESPACE twistlet:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/twistlet)

set(TWISTLET_INSTALLED_ACTOR OFF)
if(TARGET twistlet_actor)
  set(TWISTLET_INSTALLED_ACTOR ON)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/twistletConfig.cmake.in
  ${PROJECT_BINARY_DIR}/twistletConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/twistlet)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/twistletConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/twistletConfig.cmake ${PROJECT_BINARY_DIR}/twistletConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/twistlet)

# The .pc files locate the prefix relative to themselves, so an installed tree can be moved.
file(RELATIVE_PATH TWISTLET_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(${PROJECT_SOURCE_DIR}/cmake/twistlet.pc.in ${PROJECT_BINARY_DIR}/twistlet.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/twistlet.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(TARGET twistlet_actor)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/twistlet-actor.pc.in ${PROJECT_BINARY_DIR}/twistlet-actor.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/twistlet-actor.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()
