# Runs one documentation snippet and checks what it did (see docs/CMakeLists.txt).
#   cmake -DPROGRAM=<exe> -DNAME=<name> [-DEXPECTED_FILE=<f>] [-DSTDERR_FILE=<f>] [-DEXIT_FILE=<f>]
#         -P run_snippet.cmake
# EXPECTED_FILE: stdout must equal it exactly. STDERR_FILE: a CMake regular expression that
# stderr must match. EXIT_FILE: the expected exit, a number or "abort" (killed by a signal);
# without it the program must exit 0.
cmake_minimum_required(VERSION 3.25)

if(NOT PROGRAM OR NOT NAME)
  message(FATAL_ERROR "run_snippet.cmake: PROGRAM and NAME are required")
endif()

execute_process(COMMAND "${PROGRAM}"
                OUTPUT_VARIABLE out
                ERROR_VARIABLE err
                RESULT_VARIABLE rc)

set(problems "")

set(want_exit 0)
if(EXIT_FILE)
  file(READ "${EXIT_FILE}" want_exit)
  string(STRIP "${want_exit}" want_exit)
endif()
if(want_exit STREQUAL "abort")
  # A signal death is reported as a message ("Child aborted", "Segmentation fault", ...), not
  # a number.
  if(rc MATCHES "^[0-9]+$")
    string(APPEND problems "expected the program to die by a signal, but it exited with ${rc}\n")
  endif()
elseif(NOT rc STREQUAL want_exit)
  string(APPEND problems "exit status: expected ${want_exit}, got ${rc}\n")
endif()

if(EXPECTED_FILE)
  file(READ "${EXPECTED_FILE}" want_out)
  if(NOT out STREQUAL want_out)
    string(APPEND problems "stdout differs from ${EXPECTED_FILE}\n")
    # A line diff is easier to read than two dumps.
    set(actual_file "${CMAKE_CURRENT_BINARY_DIR}/${NAME}.actual")
    file(WRITE "${actual_file}" "${out}")
    execute_process(COMMAND diff -u "${EXPECTED_FILE}" "${actual_file}"
                    OUTPUT_VARIABLE diff_out ERROR_QUIET)
    if(diff_out)
      string(APPEND problems "${diff_out}")
    else()
      string(APPEND problems "--- expected ---\n${want_out}--- actual ---\n${out}\n")
    endif()
  endif()
endif()

if(STDERR_FILE)
  file(READ "${STDERR_FILE}" want_err)
  string(STRIP "${want_err}" want_err)
  if(NOT err MATCHES "${want_err}")
    string(APPEND problems "stderr does not match the pattern in ${STDERR_FILE}:\n  ${want_err}\n")
  endif()
endif()

if(problems)
  # Plain message() prints the text as it is (FATAL_ERROR would re-wrap a diff).
  message("--- stdout of ${NAME} ---\n${out}--- stderr of ${NAME} ---\n${err}--- problems ---\n${problems}")
  message(FATAL_ERROR "snippet ${NAME} failed")
endif()
# Show the output on success too (ctest -V), so the docs' authors can copy it.
message("${out}")
