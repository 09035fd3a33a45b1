# The runtime's in-process tests (label runtime): flash sales on one hot SKU and on many,
# passivation, backpressure and error answers, on a real CAF actor system and a real
# RocksDB journal in temp dirs. README.md in this folder says what each test proves.
add_library(ffe_runtime_test_support STATIC runtime_test_support.cc)
target_include_directories(ffe_runtime_test_support PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(ffe_runtime_test_support PUBLIC ffe_runtime ffe_storage_test_support)

ffe_test(ffe_runtime_test
  flash_sale_test.cc
  passivation_test.cc
  runtime_test.cc
  terminal_absorbing_test.cc
  LIBS ffe_runtime_test_support
  LABELS runtime)
