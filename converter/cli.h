// A small command-line parser shared by the tools: positional arguments,
// --flag, --option VALUE (or --option=VALUE), with clear errors; and the
// tools' other shared bits of text. Built for any x86-64 (vitint_cli, no
// AVX2), so that vitint-classify runs wherever the library does.
#pragma once
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace vitint::convert {

class Args {
 public:
  // options: names taking a value; flags: names without one (both without "--").
  Args(int argc, char** argv, const std::set<std::string>& options, const std::set<std::string>& flags);
  const std::vector<std::string>& positional() const { return positional_; }
  bool has(const std::string& name) const { return values_.count(name) || flags_.count(name); }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  // Integer option in [lo, hi]; throws vitint::Error naming the option otherwise.
  int get_int(const std::string& name, int fallback, int lo, int hi) const;
  // Integer option that must be one of `choices`; throws vitint::Error naming the option otherwise.
  int get_choice(const std::string& name, int fallback, std::initializer_list<int> choices) const;
  // Throws vitint::Error if a required option is absent.
  std::string require(const std::string& name) const;

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
};

// For an output the tool is about to write: throws vitint::Error ("<what>
// PATH already exists; pass --force to overwrite it") if PATH exists and
// `force` is false, ("<what> PATH is a directory; name a file") for a
// directory whatever `force`, and ("cannot write <what> PATH: directory DIR:
// REASON") where its directory is missing or not writable. Tools call it
// before their long work, not after.
void refuse_existing(const std::string& path, const std::string& what, bool force);

// For an output the tool is about to write: throws vitint::Error ("<what>
// PATH is the same file as <other what> OTHER") if PATH names the same file
// as one of `others` ({what, path}: the other outputs and the inputs), by
// the absolute, lexically normalized path or, for files that exist, by
// device and inode.
void refuse_same_file(const std::string& path, const std::string& what,
                      const std::vector<std::pair<std::string, std::string>>& others);

// A tool's JSON output, indented by 2: strings that are not UTF-8 (a path
// a user named) print with U+FFFD instead of failing after the work is done.
std::string json_text(const nlohmann::json& j);

// `s` with every byte sequence that is not UTF-8 replaced by U+FFFD (what
// JSON, and so a model file's metadata, can hold).
std::string utf8_text(const std::string& s);

// One line for people: a model's calibration recipe (JSON) without the
// per-layer details.
std::string recipe_summary(const std::string& recipe_json);

}  // namespace vitint::convert
