// The leaves of a JSON document as JSON pointers, for the tests that edit
// metadata, headers and configs at random.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vitint::test {

// Every leaf of `j` (a value that is neither an object nor a non-empty
// array), as a JSON pointer ("/quant/blocks/3/attn/zq").
inline void json_leaves(const nlohmann::json& j, const std::string& at, std::vector<std::string>* out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      std::string key;  // RFC 6901 escapes
      for (const char ch : it.key()) key += ch == '~' ? "~0" : ch == '/' ? "~1" : std::string(1, ch);
      json_leaves(it.value(), at + "/" + key, out);
    }
  } else if (j.is_array() && !j.empty()) {
    for (size_t i = 0; i < j.size(); ++i) json_leaves(j[i], at + "/" + std::to_string(i), out);
  } else {
    out->push_back(at);
  }
}

}  // namespace vitint::test
