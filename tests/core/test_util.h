#pragma once
// Shared by tests/core: fixture loading and a matcher for RecordError field + message.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "core/record_error.h"

namespace trtpack::core::testing {

inline std::string read_fixture(const std::string& name) {
  std::ifstream in("tests/fixtures/records/" + name, std::ios::binary);
  if (!in) throw std::runtime_error("fixture missing: " + name);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Runs fn, requires a RecordError whose field() is `field` and whose message contains `part`.
inline ::testing::AssertionResult fails_with(const std::function<void()>& fn, const std::string& field,
                                             const std::string& part) {
  try {
    fn();
  } catch (const RecordError& e) {
    if (e.field() != field)
      return ::testing::AssertionFailure() << "field \"" << e.field() << "\" != \"" << field << "\" in: " << e.what();
    if (std::string(e.what()).find(part) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks \"" << part << "\": " << e.what();
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no RecordError (expected " << field << ": ..." << part << ")";
}

}  // namespace trtpack::core::testing
