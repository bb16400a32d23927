// The temporal link update and the directional weightings, forward and backward, in one pass over the
// N x N link matrix per sample (CPU). Built on first use by babi_dnc/kernels.py; the same numbers as
// link_update + directional_weightings in memory.py (up to float rounding order).
//
//   forward:  L[i,j] = (1 - w[i] - w[j]) Lp[i,j] + w[i] p[j],  L[i,i] = 0
//             f[r,i] = sum_j L[i,j] rw[r,j],   b[r,j] = sum_i L[i,j] rw[r,i]
//   backward: G[i,j]  = gL[i,j] + sum_r gf[r,i] rw[r,j] + sum_r rw[r,i] gb[r,j],  G[i,i] = 0
//             dLp[i,j] = G[i,j] (1 - w[i] - w[j])
//             dw[k]    = sum_j G[k,j] (p[j] - Lp[k,j]) - sum_i G[i,k] Lp[i,k]
//             dp[j]    = sum_i G[i,j] w[i]
//             drw[r,j] = sum_i gf[r,i] L[i,j] + sum_i gb[r,i] L[j,i]
// L is recomputed from Lp in the backward pass (3 flops per entry) rather than read back from memory.
// Shapes: Lp, L [B, N, N]; w, p [B, N]; rw, f, b [B, R, N]. Samples run in parallel (at::parallel_for);
// the row loops are written so that the compiler vectorises them (target_clones picks AVX-512 or AVX2
// at run time on x86-64).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define BABI_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BABI_CLONES
#endif
#define BABI_INLINE inline __attribute__((always_inline))

namespace {

template <typename T>
BABI_INLINE void forward_sample(const T* lp, const T* w, const T* p, const T* rw, T* l, T* f, T* bk, int64_t N,
                                int64_t R) {
  for (int64_t k = 0; k < R * N; ++k) bk[k] = 0;
  for (int64_t i = 0; i < N; ++i) {
    const T wi = w[i], one_wi = T(1) - wi;
    const T* lpi = lp + i * N;
    T* li = l + i * N;
#pragma omp simd
    for (int64_t j = 0; j < N; ++j) li[j] = (one_wi - w[j]) * lpi[j] + wi * p[j];
    li[i] = 0;
    for (int64_t r = 0; r < R; ++r) {
      const T* rwr = rw + r * N;
      T* bkr = bk + r * N;
      const T c = rwr[i];
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < N; ++j) {
        s += li[j] * rwr[j];
        bkr[j] += li[j] * c;
      }
      f[r * N + i] = s;
    }
  }
}

template <typename T>
BABI_INLINE void backward_sample(const T* gl, const T* gf, const T* gb, const T* lp, const T* w, const T* p,
                                 const T* rw, T* dlp, T* dw, T* dp, T* drw, int64_t N, int64_t R) {
  std::vector<T> lrow(N), grow(N), dwcol(N, T(0));
  T* lr = lrow.data();
  T* g = grow.data();
  T* dc = dwcol.data();
  for (int64_t k = 0; k < N; ++k) dp[k] = 0;
  for (int64_t k = 0; k < R * N; ++k) drw[k] = 0;
  for (int64_t i = 0; i < N; ++i) {
    const T wi = w[i], one_wi = T(1) - wi;
    const T* lpi = lp + i * N;
    const T* gli = gl ? gl + i * N : nullptr;
    // The new link's row i (recomputed) and the total gradient G's row i.
    {
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) {
        lr[j] = (one_wi - w[j]) * lpi[j] + wi * p[j];
        g[j] = gli ? gli[j] : T(0);
      }
      for (int64_t r = 0; r < R; ++r) {
        const T a = gf[r * N + i], c = rw[r * N + i];
        const T* rwr = rw + r * N;
        const T* gbr = gb + r * N;
#pragma omp simd
        for (int64_t j = 0; j < N; ++j) g[j] += a * rwr[j] + c * gbr[j];
      }
    }
    lr[i] = 0;
    g[i] = 0;
    // Gradients of the directional weightings with respect to the previous read weights.
    for (int64_t r = 0; r < R; ++r) {
      const T a = gf[r * N + i];
      const T* gbr = gb + r * N;
      T* drwr = drw + r * N;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < N; ++j) {
        drwr[j] += a * lr[j];
        s += gbr[j] * lr[j];
      }
      drwr[i] += s;
    }
    // Gradients of the link update.
    T* dlpi = dlp + i * N;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < N; ++j) {
      const T gj = g[j];
      s += gj * (p[j] - lpi[j]);
      dc[j] -= gj * lpi[j];
      dp[j] += gj * wi;
      dlpi[j] = gj * (one_wi - w[j]);
    }
    dw[i] = s;
  }
  for (int64_t k = 0; k < N; ++k) dw[k] += dc[k];
}

// One overload per dtype (target_clones applies to functions, not to templates); calls from the kernels
// below go through the run-time choice of AVX-512, AVX2 or plain code.
BABI_CLONES void forward_dispatch(const float* lp, const float* w, const float* p, const float* rw, float* l,
                                  float* f, float* bk, int64_t N, int64_t R) {
  forward_sample<float>(lp, w, p, rw, l, f, bk, N, R);
}
BABI_CLONES void forward_dispatch(const double* lp, const double* w, const double* p, const double* rw, double* l,
                                  double* f, double* bk, int64_t N, int64_t R) {
  forward_sample<double>(lp, w, p, rw, l, f, bk, N, R);
}
BABI_CLONES void backward_dispatch(const float* gl, const float* gf, const float* gb, const float* lp,
                                   const float* w, const float* p, const float* rw, float* dlp, float* dw,
                                   float* dp, float* drw, int64_t N, int64_t R) {
  backward_sample<float>(gl, gf, gb, lp, w, p, rw, dlp, dw, dp, drw, N, R);
}
BABI_CLONES void backward_dispatch(const double* gl, const double* gf, const double* gb, const double* lp,
                                   const double* w, const double* p, const double* rw, double* dlp, double* dw,
                                   double* dp, double* drw, int64_t N, int64_t R) {
  backward_sample<double>(gl, gf, gb, lp, w, p, rw, dlp, dw, dp, drw, N, R);
}

void check_inputs(const at::Tensor& lp, const at::Tensor& w, const at::Tensor& p, const at::Tensor& rw) {
  TORCH_CHECK(lp.dim() == 3 && lp.size(1) == lp.size(2), "prev_link must be [B, N, N]");
  const auto B = lp.size(0), N = lp.size(1);
  TORCH_CHECK(w.dim() == 2 && w.size(0) == B && w.size(1) == N, "write_weights must be [B, N]");
  TORCH_CHECK(p.dim() == 2 && p.size(0) == B && p.size(1) == N, "prev_precedence must be [B, N]");
  TORCH_CHECK(rw.dim() == 3 && rw.size(0) == B && rw.size(2) == N, "prev_read_weights must be [B, R, N]");
  for (const auto* t : {&w, &p, &rw})
    TORCH_CHECK(t->scalar_type() == lp.scalar_type(), "all link inputs must have the same dtype");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> link_forward_cpu(const at::Tensor& prev_link,
                                                                const at::Tensor& write_weights,
                                                                const at::Tensor& prev_precedence,
                                                                const at::Tensor& prev_read_weights) {
  check_inputs(prev_link, write_weights, prev_precedence, prev_read_weights);
  auto lp = prev_link.contiguous(), w = write_weights.contiguous(), p = prev_precedence.contiguous(),
       rw = prev_read_weights.contiguous();
  const int64_t B = lp.size(0), N = lp.size(1), R = rw.size(1);
  auto link = at::empty_like(lp);
  auto fwd = at::empty_like(rw), bwd = at::empty_like(rw);
  AT_DISPATCH_FLOATING_TYPES(lp.scalar_type(), "link_forward_cpu", [&] {
    const auto *lp_ = lp.data_ptr<scalar_t>(), *w_ = w.data_ptr<scalar_t>(), *p_ = p.data_ptr<scalar_t>(),
               *rw_ = rw.data_ptr<scalar_t>();
    auto *l_ = link.data_ptr<scalar_t>(), *f_ = fwd.data_ptr<scalar_t>(), *b_ = bwd.data_ptr<scalar_t>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        forward_dispatch(lp_ + b * N * N, w_ + b * N, p_ + b * N, rw_ + b * R * N, l_ + b * N * N, f_ + b * R * N,
                         b_ + b * R * N, N, R);
    });
  });
  return {link, fwd, bwd};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> link_backward_cpu(
    const c10::optional<at::Tensor>& g_link, const at::Tensor& g_forward, const at::Tensor& g_backward,
    const at::Tensor& prev_link, const at::Tensor& write_weights, const at::Tensor& prev_precedence,
    const at::Tensor& prev_read_weights) {
  check_inputs(prev_link, write_weights, prev_precedence, prev_read_weights);
  auto lp = prev_link.contiguous(), w = write_weights.contiguous(), p = prev_precedence.contiguous(),
       rw = prev_read_weights.contiguous(), gf = g_forward.contiguous(), gb = g_backward.contiguous();
  at::Tensor gl;
  if (g_link.has_value() && g_link->defined()) gl = g_link->contiguous();
  const int64_t B = lp.size(0), N = lp.size(1), R = rw.size(1);
  auto d_link = at::empty_like(lp), d_w = at::empty_like(w), d_p = at::empty_like(p), d_rw = at::empty_like(rw);
  AT_DISPATCH_FLOATING_TYPES(lp.scalar_type(), "link_backward_cpu", [&] {
    const scalar_t* gl_ = gl.defined() ? gl.data_ptr<scalar_t>() : nullptr;
    const auto *gf_ = gf.data_ptr<scalar_t>(), *gb_ = gb.data_ptr<scalar_t>(), *lp_ = lp.data_ptr<scalar_t>(),
               *w_ = w.data_ptr<scalar_t>(), *p_ = p.data_ptr<scalar_t>(), *rw_ = rw.data_ptr<scalar_t>();
    auto *dl_ = d_link.data_ptr<scalar_t>(), *dw_ = d_w.data_ptr<scalar_t>(), *dp_ = d_p.data_ptr<scalar_t>(),
         *drw_ = d_rw.data_ptr<scalar_t>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        backward_dispatch(gl_ ? gl_ + b * N * N : nullptr, gf_ + b * R * N, gb_ + b * R * N, lp_ + b * N * N,
                          w_ + b * N, p_ + b * N, rw_ + b * R * N, dl_ + b * N * N, dw_ + b * N, dp_ + b * N,
                          drw_ + b * R * N, N, R);
    });
  });
  return {d_link, d_w, d_p, d_rw};
}

}  // namespace

TORCH_LIBRARY(babi_dnc, m) {
  m.def(
      "link_forward(Tensor prev_link, Tensor write_weights, Tensor prev_precedence, Tensor prev_read_weights)"
      " -> (Tensor, Tensor, Tensor)");
  m.def(
      "link_backward(Tensor? g_link, Tensor g_forward, Tensor g_backward, Tensor prev_link, Tensor write_weights,"
      " Tensor prev_precedence, Tensor prev_read_weights) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(babi_dnc, CPU, m) {
  m.impl("link_forward", &link_forward_cpu);
  m.impl("link_backward", &link_backward_cpu);
}
