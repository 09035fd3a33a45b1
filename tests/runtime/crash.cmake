# The runtime's crash tests (RuntimeCrash.*, so `ctest -R Crash` runs them) and durable
# deadlines (DurableDeadlines.*): a helper process holds a Runtime and is killed with SIGKILL
# or closed cleanly, then the test reopens the data dir and checks what survived.

# Shared by the tests and the helper process: an in-process payment/shipping participant
# (runtime::Egress), builders, the journal read back and the digest rebuild.
add_library(ffe_runtime_crash_support STATIC ${CMAKE_CURRENT_LIST_DIR}/crash_support.cc)
target_include_directories(ffe_runtime_crash_support PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(ffe_runtime_crash_support PUBLIC ffe_runtime ffe_storage)

add_executable(ffe_runtime_child ${CMAKE_CURRENT_LIST_DIR}/runtime_child.cc)
target_link_libraries(ffe_runtime_child PRIVATE ffe_runtime ffe_runtime_crash_support)

ffe_test(ffe_runtime_crash_test
  ${CMAKE_CURRENT_LIST_DIR}/crash_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/deadline_test.cc
  LIBS ffe_runtime ffe_runtime_crash_support ffe_storage_test_support
  LABELS runtime)
target_compile_definitions(ffe_runtime_crash_test PRIVATE
  FFE_RUNTIME_CHILD="$<TARGET_FILE:ffe_runtime_child>")
add_dependencies(ffe_runtime_crash_test ffe_runtime_child)
