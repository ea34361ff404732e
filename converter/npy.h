// Minimal reader for NumPy .npy files holding little-endian float32 arrays in
// C order (what numpy.save writes for a float32 array), e.g. timm's logits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vitint::convert {

struct NpyArray {
  std::vector<int64_t> shape;  // empty for a 0-d array
  std::vector<float> data;     // row-major
  int64_t numel() const;
};

// Throws vitint::Error naming the file on anything else: bad magic, unknown
// format version, a dtype other than '<f4', Fortran order, a malformed
// header, or a data size that does not match the shape.
NpyArray read_npy_f32(const std::string& path);

}  // namespace vitint::convert
