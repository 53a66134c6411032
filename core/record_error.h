#pragma once
// The one error type of core/: every failure names the field (a JSON path such as
// "inputs[0].dtype", or "plan" for the plan bytes) and says what to do about it.
#include <stdexcept>
#include <string>

namespace trtpack::core {

class RecordError : public std::runtime_error {
 public:
  RecordError(std::string field, const std::string& problem)
      : std::runtime_error(field + ": " + problem), field_(std::move(field)) {}
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

}  // namespace trtpack::core
