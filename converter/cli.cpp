#include "converter/cli.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/src/output_files.h"
#include "vitint/error.h"

namespace vitint::convert {

Args::Args(int argc, char** argv, const std::set<std::string>& options, const std::set<std::string>& flags) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      std::string name = a.substr(2), value;
      const auto eq = name.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      if (flags.count(name)) {
        if (inline_value) throw Error("option --" + name + " takes no value");
        flags_.insert(name);
      } else if (options.count(name)) {
        if (!inline_value) {
          if (i + 1 >= argc) throw Error("option --" + name + " needs a value");
          value = argv[++i];
        }
        values_[name] = value;
      } else {
        throw Error("unknown option --" + name + " (see --help)");
      }
    } else if (a == "-o" && options.count("output")) {
      if (i + 1 >= argc) throw Error("option -o needs a value");
      values_["output"] = argv[++i];
    } else if (a.size() > 1 && a[0] == '-') {
      throw Error("unknown option " + a + " (see --help)");
    } else {
      positional_.push_back(a);
    }
  }
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  const auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

namespace {

// The whole of `text` as an integer, or nothing.
std::optional<long> to_long(const std::string& text) {
  try {
    size_t used = 0;
    const long v = std::stol(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace

int Args::get_int(const std::string& name, int fallback, int lo, int hi) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  const std::optional<long> v = to_long(it->second);
  if (!v || *v < lo || *v > hi)
    throw Error("option --" + name + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                "], got '" + it->second + "'");
  return static_cast<int>(*v);
}

int Args::get_choice(const std::string& name, int fallback, std::initializer_list<int> choices) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  const std::optional<long> v = to_long(it->second);
  if (v && std::find(choices.begin(), choices.end(), *v) != choices.end()) return static_cast<int>(*v);
  std::string list;
  for (int c : choices) list += (list.empty() ? "" : " or ") + std::to_string(c);
  throw Error("option --" + name + " must be " + list + ", got '" + it->second + "'");
}

std::string Args::require(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) throw Error("missing required option --" + name + " (see --help)");
  return it->second;
}

void refuse_existing(const std::string& path, const std::string& what, bool force) {
  if (path.empty()) throw Error(what + " path is empty");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) throw Error(what + " " + path + " is a directory; name a file");
    if (!force) throw_exists(path, what);
  }
  const std::string dir = directory_of(path);
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw Error("cannot write " + what + " " + path + ": directory " + dir + ": " + std::strerror(errno));
}

void refuse_same_file(const std::string& path, const std::string& what,
                      const std::vector<std::pair<std::string, std::string>>& others) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path normal = fs::absolute(path, ec).lexically_normal();
  struct stat st {}, other_st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  for (const auto& [other_what, other] : others)
    if (fs::absolute(other, ec).lexically_normal() == normal ||
        (exists && ::stat(other.c_str(), &other_st) == 0 && st.st_dev == other_st.st_dev &&
         st.st_ino == other_st.st_ino))
      throw Error(what + " " + path + " is the same file as " + other_what + " " + other);
}

std::string json_text(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string utf8_text(const std::string& s) {
  return nlohmann::json::parse(nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
      .get<std::string>();
}

std::string recipe_summary(const std::string& recipe_json) {
  nlohmann::json j = nlohmann::json::parse(recipe_json, nullptr, false);
  if (!j.is_object()) return recipe_json;
  j.erase("channel_folding");
  return j.dump();
}

}  // namespace vitint::convert
