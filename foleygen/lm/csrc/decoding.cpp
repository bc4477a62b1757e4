// Native CPU kernels for decoding steps, registered as the torch ops foleygen_native::linear_half,
// linear_int8 and attend_one (see foleygen/lm/native.py for why they exist and how they are built).
//
// Written against PyTorch's stable C++ ABI (torch/csrc/stable, torch >= 2.10; TORCH_TARGET_VERSION is
// set by native.py), for two reasons: its headers compile in ~2 s where ATen's Tensor and op registry
// take ~10-40 s on a small shared machine (torch/extension.h with its Python bindings ~50 s or more),
// and a library built once keeps working on later torch releases.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

using torch::headeronly::ScalarType;
using torch::stable::Tensor;

namespace {

inline float widen_bf16(uint16_t h) {  // bf16 -> float32: the bf16 bits are the top half
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// float16 -> float32, exactly. Normal numbers: the exponent and mantissa bits move into place and the
// exponent is rebiased by 127 - 15; infinities and NaNs get the all-ones exponent; zeros and subnormals
// are their mantissa times 2^-24 (no float subnormals, so flushing them cannot bite). Plain integer and
// float operations and selects, which the loops below vectorise on any compiler, unlike _Float16, whose
// availability and conversions vary by compiler and target.
inline float widen_f16(uint16_t h) {
  uint32_t em = h & 0x7fffu;
  uint32_t u = em >= 0x7c00u ? (em << 13) | 0x7f800000u : (em << 13) + (112u << 23);
  float f;
  std::memcpy(&f, &u, 4);
  if (em < 0x400u) f = static_cast<float>(em) * 0x1p-24f;
  std::memcpy(&u, &f, 4);
  u |= static_cast<uint32_t>(h & 0x8000u) << 16;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float same(float x) { return x; }

inline float widen_i8(int8_t q) { return static_cast<float>(q); }

// y[r, o] = sum_i x[r, i] * W[o, i] for R rows from r0, reading each weight row once. One named
// accumulator per row (not an array) is what lets compilers vectorise the sums.
template <typename T, float (*Widen)(T)>
void rows_1(const T* W, const float* x, float* y, int64_t out, int64_t in, int64_t r0) {
  const float* x0 = x + r0 * in;
  for (int64_t o = 0; o < out; o++) {
    const T* w = W + o * in;
    float a0 = 0.f;
    for (int64_t i = 0; i < in; i++) a0 += Widen(w[i]) * x0[i];
    y[r0 * out + o] = a0;
  }
}

template <typename T, float (*Widen)(T)>
void rows_2(const T* W, const float* x, float* y, int64_t out, int64_t in, int64_t r0) {
  const float *x0 = x + r0 * in, *x1 = x0 + in;
  for (int64_t o = 0; o < out; o++) {
    const T* w = W + o * in;
    float a0 = 0.f, a1 = 0.f;
    for (int64_t i = 0; i < in; i++) {
      float wi = Widen(w[i]);
      a0 += wi * x0[i];
      a1 += wi * x1[i];
    }
    y[r0 * out + o] = a0;
    y[(r0 + 1) * out + o] = a1;
  }
}

template <typename T, float (*Widen)(T)>
void rows_4(const T* W, const float* x, float* y, int64_t out, int64_t in, int64_t r0) {
  const float *x0 = x + r0 * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;
  for (int64_t o = 0; o < out; o++) {
    const T* w = W + o * in;
    float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
    for (int64_t i = 0; i < in; i++) {
      float wi = Widen(w[i]);
      a0 += wi * x0[i];
      a1 += wi * x1[i];
      a2 += wi * x2[i];
      a3 += wi * x3[i];
    }
    y[r0 * out + o] = a0;
    y[(r0 + 1) * out + o] = a1;
    y[(r0 + 2) * out + o] = a2;
    y[(r0 + 3) * out + o] = a3;
  }
}

template <typename T, float (*Widen)(T)>
void linear_rows(const T* W, const float* x, float* y, int64_t out, int64_t in, int64_t rows) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) rows_4<T, Widen>(W, x, y, out, in, r);
  for (; r + 2 <= rows; r += 2) rows_2<T, Widen>(W, x, y, out, in, r);
  for (; r < rows; r++) rows_1<T, Widen>(W, x, y, out, in, r);
}

template <typename T, float (*Load)(T)>
void add_bias(float* y, const T* b, int64_t rows, int64_t out) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < out; o++) y[r * out + o] += Load(b[o]);
}

// x float32 [rows, in], weight bf16 or float16 [out, in] (both contiguous), bias [out] in the weight's
// dtype or float32 -> float32 [rows, out].
Tensor linear_half(Tensor x, Tensor weight, std::optional<Tensor> bias) {
  STD_TORCH_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1),
              "linear_half: need x [rows, in] and weight [out, in]");
  STD_TORCH_CHECK(x.scalar_type() == ScalarType::Float, "linear_half: x must be float32");
  const bool f16 = weight.scalar_type() == ScalarType::Half;
  STD_TORCH_CHECK(f16 || weight.scalar_type() == ScalarType::BFloat16, "linear_half: weight must be bf16 or float16");
  STD_TORCH_CHECK(x.is_contiguous() && weight.is_contiguous(), "linear_half: x and weight must be contiguous");
  const int64_t rows = x.size(0), in = x.size(1), out = weight.size(0);
  Tensor y = torch::stable::new_empty(x, {rows, out});
  const auto* W = static_cast<const uint16_t*>(weight.const_data_ptr());
  const float* xp = x.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  if (f16)
    linear_rows<uint16_t, widen_f16>(W, xp, yp, out, in, rows);
  else
    linear_rows<uint16_t, widen_bf16>(W, xp, yp, out, in, rows);
  if (bias.has_value() && bias->defined()) {
    const Tensor& b = *bias;
    STD_TORCH_CHECK(b.dim() == 1 && b.size(0) == out && b.is_contiguous(), "linear_half: bias must be [out]");
    if (b.scalar_type() == ScalarType::Float)
      add_bias<float, same>(yp, b.const_data_ptr<float>(), rows, out);
    else if (b.scalar_type() == ScalarType::BFloat16)
      add_bias<uint16_t, widen_bf16>(yp, static_cast<const uint16_t*>(b.const_data_ptr()), rows, out);
    else if (b.scalar_type() == ScalarType::Half)
      add_bias<uint16_t, widen_f16>(yp, static_cast<const uint16_t*>(b.const_data_ptr()), rows, out);
    else
      STD_TORCH_CHECK(false, "linear_half: bias must be float32, bf16 or float16");
  }
  return y;
}

// x float32 [rows, in], q int8 [out, in] and scale float32 [out] (weight[o, i] ~= scale[o] * q[o, i], the
// per-output-channel weight-only quantisation of cpu_decoding's int8 path), bias float32 [out] or none
// -> float32 [rows, out]. Reads one byte per weight: a quarter of float32's, half of bf16's.
Tensor linear_int8(Tensor x, Tensor q, Tensor scale, std::optional<Tensor> bias) {
  STD_TORCH_CHECK(x.dim() == 2 && q.dim() == 2 && x.size(1) == q.size(1),
                  "linear_int8: need x [rows, in] and q [out, in]");
  STD_TORCH_CHECK(x.scalar_type() == ScalarType::Float && q.scalar_type() == ScalarType::Char,
                  "linear_int8: x must be float32 and q int8");
  const int64_t rows = x.size(0), in = x.size(1), out = q.size(0);
  STD_TORCH_CHECK(scale.dim() == 1 && scale.size(0) == out && scale.scalar_type() == ScalarType::Float,
                  "linear_int8: scale must be float32 [out]");
  STD_TORCH_CHECK(x.is_contiguous() && q.is_contiguous() && scale.is_contiguous(),
                  "linear_int8: x, q and scale must be contiguous");
  Tensor y = torch::stable::new_empty(x, {rows, out});
  float* yp = y.mutable_data_ptr<float>();
  linear_rows<int8_t, widen_i8>(static_cast<const int8_t*>(q.const_data_ptr()), x.const_data_ptr<float>(), yp, out,
                                in, rows);
  const float* sp = scale.const_data_ptr<float>();
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < out; o++) yp[r * out + o] *= sp[o];
  if (bias.has_value() && bias->defined()) {
    const Tensor& b = *bias;
    STD_TORCH_CHECK(b.dim() == 1 && b.size(0) == out && b.is_contiguous() && b.scalar_type() == ScalarType::Float,
                    "linear_int8: bias must be float32 [out]");
    add_bias<float, same>(yp, b.const_data_ptr<float>(), rows, out);
  }
  return y;
}

// One query per (batch row, head) over S keys: out[bh] = softmax(scale * K[bh] q[bh]) V[bh]. q float32
// [BH, hd] contiguous; K, V rows of hd contiguous at (bh, s) strides in elements.
template <typename T, float (*Load)(T)>
void attend(const float* q, const T* K, const T* V, float* out, int64_t BH, int64_t S, int64_t hd, int64_t k_bh,
            int64_t k_s, int64_t v_bh, int64_t v_s, float scale, float* scores) {
  for (int64_t bh = 0; bh < BH; bh++) {
    const float* qb = q + bh * hd;
    const T *kb = K + bh * k_bh, *vb = V + bh * v_bh;
    float top = -1e30f;
    for (int64_t s = 0; s < S; s++) {
      const T* kr = kb + s * k_s;
      float d = 0.f;
      for (int64_t i = 0; i < hd; i++) d += qb[i] * Load(kr[i]);
      d *= scale;
      scores[s] = d;
      if (d > top) top = d;
    }
    float total = 0.f;
    for (int64_t s = 0; s < S; s++) {
      scores[s] = std::exp(scores[s] - top);
      total += scores[s];
    }
    float* ob = out + bh * hd;
    for (int64_t i = 0; i < hd; i++) ob[i] = 0.f;
    for (int64_t s = 0; s < S; s++) {
      const T* vr = vb + s * v_s;
      float p = scores[s] / total;
      for (int64_t i = 0; i < hd; i++) ob[i] += p * Load(vr[i]);
    }
  }
}

// q float32 [B, H, 1, hd]; k, v [B, H, S, hd], float32 or bf16, rows contiguous and heads at a fixed
// stride (a KV cache's prefix) -> float32 [B, H, 1, hd].
Tensor attend_one(Tensor q_in, Tensor k, Tensor v) {
  STD_TORCH_CHECK(q_in.dim() == 4 && q_in.size(2) == 1 && q_in.scalar_type() == ScalarType::Float,
              "attend_one: need one float32 query [B, H, 1, hd]");
  STD_TORCH_CHECK(k.dim() == 4 && k.size(0) == v.size(0) && k.size(1) == v.size(1) && k.size(2) == v.size(2) && k.size(3) == v.size(3) && k.scalar_type() == v.scalar_type(),
              "attend_one: keys and values must match");
  STD_TORCH_CHECK(k.scalar_type() == ScalarType::Float || k.scalar_type() == ScalarType::BFloat16,
              "attend_one: keys must be float32 or bf16");
  const int64_t B = q_in.size(0), H = q_in.size(1), hd = q_in.size(3), S = k.size(2);
  STD_TORCH_CHECK(k.size(0) == B && k.size(1) == H && k.size(3) == hd, "attend_one: q and k shapes differ");
  STD_TORCH_CHECK(k.stride(3) == 1 && v.stride(3) == 1 && k.stride(0) == H * k.stride(1) &&
                  v.stride(0) == H * v.stride(1),
              "attend_one: keys and values need contiguous rows and heads at a fixed stride");
  Tensor q = torch::stable::contiguous(q_in);
  Tensor out = torch::stable::new_empty(q, {B, H, 1, hd});
  std::vector<float> scores(static_cast<size_t>(S > 0 ? S : 1));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  if (k.scalar_type() == ScalarType::BFloat16)
    attend<uint16_t, widen_bf16>(q.const_data_ptr<float>(), static_cast<const uint16_t*>(k.const_data_ptr()),
                                 static_cast<const uint16_t*>(v.const_data_ptr()), out.mutable_data_ptr<float>(),
                                 B * H, S, hd, k.stride(1), k.stride(2), v.stride(1), v.stride(2), scale,
                                 scores.data());
  else
    attend<float, same>(q.const_data_ptr<float>(), k.const_data_ptr<float>(), v.const_data_ptr<float>(),
                        out.mutable_data_ptr<float>(), B * H, S, hd, k.stride(1), k.stride(2), v.stride(1),
                        v.stride(2), scale, scores.data());
  return out;
}

}  // namespace

STABLE_TORCH_LIBRARY(foleygen_native, m) {
  m.def("linear_half(Tensor x, Tensor weight, Tensor? bias) -> Tensor");
  m.def("attend_one(Tensor q, Tensor k, Tensor v) -> Tensor");
  m.def("linear_int8(Tensor x, Tensor q, Tensor scale, Tensor? bias) -> Tensor");
}

STABLE_TORCH_LIBRARY_IMPL(foleygen_native, CPU, m) {
  m.impl("linear_half", TORCH_BOX(&linear_half));
  m.impl("attend_one", TORCH_BOX(&attend_one));
  m.impl("linear_int8", TORCH_BOX(&linear_int8));
}
