#include "converter/dataset.h"

#include <unistd.h>

#include <algorithm>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>

#include "engine/src/read_file.h"
#include "vitint/error.h"

namespace vitint::convert {

std::vector<LabeledImage> read_image_list(const std::string& path) {
  const std::vector<char> bytes = read_file(path, "image list");
  if (std::find(bytes.begin(), bytes.end(), '\0') != bytes.end())
    throw Error("image list " + path + " is not a text file (it holds NUL bytes); expected 'FILE LABEL' lines");
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  std::vector<LabeledImage> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::istringstream ss(line);
    LabeledImage item;
    ss >> item.file;
    std::string label, extra;
    if (ss >> label) {
      try {
        size_t used = 0;
        item.label = std::stoi(label, &used);
        if (used != label.size() || item.label < 0) throw std::invalid_argument(label);
      } catch (const std::out_of_range&) {
        throw Error(path + ":" + std::to_string(lineno) + ": label '" + label + "' is too large");
      } catch (const std::exception&) {
        throw Error(path + ":" + std::to_string(lineno) + ": label '" + label + "' is not a non-negative integer");
      }
      if (ss >> extra) throw Error(path + ":" + std::to_string(lineno) + ": expected 'FILE LABEL', found more fields");
    }
    out.push_back(std::move(item));
  }
  if (out.empty()) throw Error("image list " + path + " has no entries");
  return out;
}

Image load_preprocessed(const std::string& path, int image_size, double crop_pct, Interpolation interp) {
  const Image raw = load_image(path);
  try {
    return preprocess(raw, image_size, crop_pct, interp);
  } catch (const Error& e) {
    throw Error("image " + path + ": " + e.what());
  }
}

std::vector<LabeledImage> slice(const std::vector<LabeledImage>& list, int skip, int limit,
                                const std::string& what) {
  if (skip < 0 || static_cast<size_t>(skip) >= list.size())
    throw Error(what + ": --skip " + std::to_string(skip) + " leaves no images (the list has " +
                std::to_string(list.size()) + ")");
  size_t end = list.size();
  if (limit >= 0) {
    if (limit == 0) throw Error(what + ": the image count must be positive");
    if (static_cast<size_t>(skip) + static_cast<size_t>(limit) > list.size())
      throw Error(what + ": asked for " + std::to_string(limit) + " images after skipping " + std::to_string(skip) +
                  ", but the list has only " + std::to_string(list.size()));
    end = static_cast<size_t>(skip + limit);
  }
  return {list.begin() + skip, list.begin() + static_cast<std::ptrdiff_t>(end)};
}

Progress::Progress(std::string label, int total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled),
      start_(std::chrono::steady_clock::now()), last_(start_ - std::chrono::seconds(1)) {}

void Progress::update(int done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  // A terminal gets a live bar; a log (CI) gets one line per tenth.
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  if (tty && done < total_ && now - last_ < std::chrono::milliseconds(100)) return;
  if (!tty) {
    const int tenth = total_ > 0 ? done * 10 / total_ : 10;
    if (tenth == last_tenth_) return;
    last_tenth_ = tenth;
  }
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const int width = 30;
  const int filled = total_ > 0 ? done * width / total_ : width;
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < width) bar += '>' + std::string(static_cast<size_t>(width - filled - 1), ' ');
  const double eta = done > 0 ? elapsed * (total_ - done) / done : 0.0;
  std::fprintf(stderr, "%s%s [%s] %d/%d  %.1f s  ETA %.1f s %s", tty ? "\r" : "", label_.c_str(), bar.c_str(), done,
               total_, elapsed, eta, tty ? "" : "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  if (!enabled_) return;
  update(total_);
  if (::isatty(STDERR_FILENO)) std::fprintf(stderr, "\n");
}

void run_threads(unsigned threads, const std::function<void(unsigned)>& body, const std::function<void()>& stop) {
  std::exception_ptr failure;
  std::mutex m;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        body(t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!failure) {
          failure = std::current_exception();
          stop();
        }
      }
    });
  for (auto& th : pool) th.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace vitint::convert
