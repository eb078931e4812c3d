"""CPU kernels: sampling family (grid_sample, affine_grid, roi_align, max_unpool, deform_conv).

grid_sample and deform_conv share `sample`: every output point reads a few taps per spatial axis (1 nearest,
2 linear, 4 cubic); the padding mode maps each tap's integer index into the input (or marks it as reading
zero), and the product over axes of the taps gives flat indices and weights. One gather per image and tap
combination reads every channel at every point, so the Python loops run over images and at most 4**3
combinations, never over pixels. Padding is applied per tap (as onnxruntime and PyTorch do), not to the
sample coordinate.

roi_align's average is separable: a region's samples along y and along x give two small weight matrices, and
its output is Wy @ window @ Wx^T, two BLAS products on a view of the image per region. Its max mode (a max
over weighted corners, not separable) gathers every sample's corners instead.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ....ir.ops.sampling import unpool_params, unpool_shape
from .conv import ConvertedWeight, compute_dtype
from .registry import kernel, kernel_factory

_CUBIC_A = -0.75  # Keys' cubic convolution parameter, as onnxruntime and PyTorch use


# -- the shared sampler -----------------------------------------------------------------------------------------
def _cubic_weights(t):
    """Keys' weights of the taps at floor - 1 .. floor + 2 for fractional positions t in [0, 1)."""
    a = _CUBIC_A

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):   # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _axis_taps(u, mode: str):
    """[(tap position, weight or None)] along one axis for coordinates u (pixel units)."""
    if mode == "nearest":
        return [(np.rint(u), None)]   # half to even, like std::nearbyint
    base = np.floor(u)
    t = u - base
    if mode == "linear":
        return [(base, 1 - t), (base + 1, t)]
    return [(base + k - 1, w) for k, w in enumerate(_cubic_weights(t))]


def _reflect(v, lo: float, hi: float):
    """Fold positions into [lo, hi] by mirroring at the borders as often as needed."""
    span = hi - lo
    if span <= 0:
        return np.zeros_like(v)
    below = v < lo
    d = np.where(below, lo - v, v - hi)              # distance past the nearer border (<= 0 inside)
    flips = np.floor(np.maximum(d, 0) / span)
    r = d - flips * span
    odd = flips % 2 == 1
    folded = np.where(below, np.where(odd, hi - r, lo + r), np.where(odd, lo + r, hi - r))
    return np.where((v >= lo) & (v <= hi), v, folded)


def _axis_index(pos, size: int, padding: str, align_corners: bool):
    """Integer index into an axis of `size` for each tap position, and a validity mask (None: all valid)."""
    pos = np.nan_to_num(np.clip(pos, -2.0 ** 30, 2.0 ** 30), nan=-1.0)
    valid = None
    if padding == "zeros":
        valid = (pos >= 0) & (pos <= size - 1)
    elif padding == "reflection":
        lo, hi = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
        pos = np.trunc(_reflect(pos, lo, hi))
    return np.clip(pos, 0, size - 1).astype(np.intp), valid


def _tap_table(coords, sizes, mode: str, padding: str, align_corners: bool):
    """For each combination of per-axis taps: the flat index into the spatial plane [N, L] and the weight
    [N, L] (None: 1; zero where a zeros-padded tap falls outside)."""
    strides = [math.prod(sizes[a + 1:]) for a in range(len(sizes))]
    per_axis = []
    for u, size, stride in zip(coords, sizes, strides):
        taps = []
        for pos, w in _axis_taps(u, mode):
            idx, valid = _axis_index(pos, size, padding, align_corners)
            if valid is not None:
                w = valid.astype(u.dtype) if w is None else w * valid
            taps.append((idx * stride, w))
        per_axis.append(taps)
    table = []
    for combo in itertools.product(*per_axis):
        weights = [w for _, w in combo if w is not None]
        table.append((sum(idx for idx, _ in combo), math.prod(weights[1:], start=weights[0]) if weights else None))
    return table


def sample(x, coords, mode: str, padding: str, align_corners: bool = True):
    """x [N, C, *S] read at per-axis pixel coordinates coords[a] [N, L] -> [N, C, L] in x's compute dtype.

    align_corners only matters for reflection (where the mirror borders are).
    """
    n, c = x.shape[:2]
    planes = x.reshape(n, c, -1)
    table = _tap_table(coords, x.shape[2:], mode, padding, align_corners)
    out = np.zeros((n, c, coords[0].shape[1]), dtype=x.dtype)
    for i in range(n):  # per image: each gather reads one [C, H*W] block, which stays in cache
        for index, weight in table:
            value = np.take(planes[i], index[i], axis=1)                       # [C, L]
            if weight is None:
                out[i] += value
            elif x.dtype.kind == "f":
                out[i] += value * weight[i].astype(x.dtype, copy=False)
            else:   # integers (nearest only): a zero weight marks a tap outside the input
                out[i] += np.where(weight[i] > 0, value, 0).astype(x.dtype, copy=False)
    return out


# -- grid_sample ------------------------------------------------------------------------------------------------
def _denormalize(g, size: int, align_corners: bool):
    """Normalised [-1, 1] coordinates -> pixel coordinates (corner centres or corner edges at +-1)."""
    if align_corners:
        return (g + 1) / 2 * (size - 1)
    return ((g + 1) * size - 1) / 2


@kernel("grid_sample")
def grid_sample(x, grid, *, mode, padding_mode, align_corners):
    n, c = x.shape[:2]
    sizes = x.shape[2:]
    out_spatial = grid.shape[1:-1]
    # Coordinates in the more precise of the two dtypes (float16 in float32).
    work = compute_dtype(np.result_type(grid.dtype, x.dtype) if x.dtype.kind == "f" else grid.dtype)
    g = grid.astype(work, copy=False).reshape(n, -1, len(sizes))
    # The grid lists x (the last spatial axis) first.
    coords = [_denormalize(g[..., len(sizes) - 1 - a], size, align_corners) for a, size in enumerate(sizes)]
    xs = x.astype(compute_dtype(x.dtype), copy=False) if x.dtype.kind == "f" else x
    y = sample(xs, coords, mode, padding_mode, align_corners)
    return y.reshape(n, c, *out_spatial).astype(x.dtype, copy=False)


# -- affine_grid ------------------------------------------------------------------------------------------------
def _base_coords(size: int, align_corners: bool):
    """The normalised coordinates of an axis' pixel centres."""
    if align_corners:
        return np.linspace(-1.0, 1.0, size) if size > 1 else np.zeros(size)
    return (2 * np.arange(size) + 1) / size - 1


@kernel("affine_grid")
def affine_grid(theta, size, *, align_corners):
    n, _, *spatial = (int(s) for s in size)
    r = len(spatial)
    mesh = np.meshgrid(*(_base_coords(s, align_corners) for s in spatial), indexing="ij")
    # Homogeneous points (x, y[, z], 1): the last spatial axis is x.
    points = np.stack([*mesh[::-1], np.ones(spatial)], axis=-1).reshape(-1, r + 1)
    work = compute_dtype(theta.dtype)
    grid = np.matmul(points.astype(work), theta.astype(work, copy=False).transpose(0, 2, 1))  # [N, P, r]
    return grid.reshape(n, *spatial, r).astype(theta.dtype, copy=False)


# -- roi_align --------------------------------------------------------------------------------------------------
class _RoiAxis:
    """Bilinear samples of every region along one axis: for region r, bin p and sample g, the two pixels a
    sample falls between (`index` [R, pooled, G, 2]) and their weights (`weight`; zero for samples past the
    band [-1, size] and for g beyond the region's sample count, which `in_grid` marks)."""

    def __init__(self, start, bin_size, grid, pooled: int, size: int):
        g_max = int(grid.max()) if grid.size else 0
        p = np.arange(pooled)[None, :, None]
        g = np.arange(g_max)[None, None, :]
        start, bin_size, grid_ = start[:, None, None], bin_size[:, None, None], grid[:, None, None]
        pos = start + p * bin_size + (g + 0.5) * bin_size / np.maximum(grid_, 1)
        self.in_grid = np.broadcast_to(g < grid_, pos.shape)
        valid = self.in_grid & (pos >= -1) & (pos <= size)
        pos = np.maximum(pos, 0)
        low = np.floor(pos).astype(np.intp)
        at_end = low >= size - 1        # at or past the last pixel: both pixels are the last one
        low = np.where(at_end, size - 1, low)
        frac = np.where(at_end, 0, pos - low)
        self.index = np.stack([low, np.where(at_end, size - 1, low + 1)], axis=-1)
        self.weight = np.stack([(1 - frac) * valid, frac * valid], axis=-1)

    def matrix(self, size: int, dtype):
        """[R, pooled, size]: the summed sample weight of each pixel in each bin."""
        r, pooled = self.index.shape[:2]
        m = np.zeros((r, pooled, size), dtype=dtype)
        np.add.at(m, (np.arange(r)[:, None, None, None], np.arange(pooled)[None, :, None, None], self.index),
                  self.weight)
        return m

    def extent(self):
        """The first and last pixel each region's samples read (last < first: it has none)."""
        flat = self.index.reshape(len(self.index), -1)
        if flat.shape[1] == 0:
            return np.zeros(len(flat), np.intp), np.full(len(flat), -1, np.intp)
        return flat.min(axis=1), flat.max(axis=1)


def _roi_geometry(rois, scale: float, half_pixel: bool, oh: int, ow: int, ratio: int):
    """Per region and axis: (start, bin size, samples per bin), y first."""
    rois = rois.astype(np.float64) * scale - (0.5 if half_pixel else 0.0)
    x1, y1, x2, y2 = rois.T
    w, h = x2 - x1, y2 - y1
    if not half_pixel:  # the legacy mode stretches malformed regions to 1 px
        w, h = np.maximum(w, 1.0), np.maximum(h, 1.0)
    bin_h, bin_w = h / oh, w / ow
    grid_h = np.full(len(rois), ratio) if ratio > 0 else np.ceil(bin_h).astype(np.int64)
    grid_w = np.full(len(rois), ratio) if ratio > 0 else np.ceil(bin_w).astype(np.int64)
    return (y1, bin_h, grid_h), (x1, bin_w, grid_w)


def _roi_avg(image, batch, ay: _RoiAxis, ax: _RoiAxis, count):
    """avg -> [R, C, oh, ow] from channels-last images [N, H, W, C]. The bilinear average is separable: a
    region's samples weight the image's rows (Wy [oh, H]) and columns (Wx [ow, W]), and its output is
    Wy @ image @ Wx^T over the rows and columns it touches: two small matrix products on a view of the image."""
    wy, wx = ay.matrix(image.shape[1], image.dtype), ax.matrix(image.shape[2], image.dtype)
    (y0, y1), (x0, x1) = ay.extent(), ax.extent()
    r, oh, ow, c = len(batch), wy.shape[1], wx.shape[1], image.shape[-1]
    out = np.zeros((r, oh, ow, c), dtype=image.dtype)
    for i in range(r):      # a loop over regions (two BLAS calls each), never over pixels
        if y1[i] < y0[i] or x1[i] < x0[i]:
            continue        # no samples: the region pools to 0
        block = image[batch[i], y0[i]:y1[i] + 1, x0[i]:x1[i] + 1]                   # [rows, cols, C] view
        cols = np.matmul(wx[i, :, x0[i]:x1[i] + 1], block)                           # [rows, ow, C]
        out[i] = np.matmul(wy[i, :, y0[i]:y1[i] + 1], cols.reshape(len(cols), -1)).reshape(oh, ow, c)
    out /= count[:, None, None, None].astype(out.dtype)
    return out.transpose(0, 3, 1, 2)


def _outer(a, b):
    """Per-axis arrays [R, oh, Gh, 2] and [R, ow, Gw, 2] broadcast against each other as [R, oh, ow, Gh, Gw, 2,
    2]: (bin y, bin x, sample y, sample x, corner y, corner x)."""
    return a[:, :, None, :, None, :, None], b[:, None, :, None, :, None, :]


def _roi_max(pixels, first_pixel, ay: _RoiAxis, ax: _RoiAxis, width: int):
    """max of a few regions -> [r, C, oh, ow]: the largest weighted corner (w * pixel) over each bin's samples
    (ONNX's definition), every sample's four corners gathered at once from pixels [N * H * W, C]."""
    yi, xi = _outer(ay.index, ax.index)
    wy, wx = _outer(ay.weight, ax.weight)
    pixel = first_pixel[:, None, None, None, None, None, None] + yi * width + xi
    r, oh, ow, gh, gw = pixel.shape[:5]
    shape = (r, oh * ow, gh * gw * 4)
    values = pixels[pixel.reshape(-1)].reshape(shape + (pixels.shape[1],))          # [r, bins, S, C]
    values *= (wy * wx).reshape(shape + (1,)).astype(values.dtype)
    taking = np.broadcast_to(np.logical_and(*_outer(ay.in_grid[..., None], ax.in_grid[..., None])), pixel.shape)
    if not taking.all():    # samples beyond a region's own count (in a group of mixed counts) take no part
        np.copyto(values, -np.inf, where=~taking.reshape(shape + (1,)))
    best = values.max(axis=2, initial=-np.inf)
    best = np.where(np.isfinite(best), best, 0)                     # a region with no samples pools to 0
    return best.transpose(0, 2, 1).reshape(r, -1, oh, ow)


def _roi_groups(grid_h, grid_w, per_sample: int, budget: int = 1 << 22):
    """Regions in groups whose gathered samples (each region padded to the group's largest grid) hold about
    `budget` values; sorted by sample count, so a group pads a region only up to similar ones."""
    order = np.argsort(grid_h * grid_w, kind="stable")
    lo = 0
    while lo < len(order):
        hi, gh, gw = lo, 0, 0
        while hi < len(order):
            gh2, gw2 = max(gh, grid_h[order[hi]]), max(gw, grid_w[order[hi]])
            if hi > lo and (hi - lo + 1) * gh2 * gw2 * per_sample > budget:
                break
            gh, gw, hi = gh2, gw2, hi + 1
        yield order[lo:hi]
        lo = hi


@kernel("roi_align")
def roi_align(x, rois, batch_indices, *, mode, output_height, output_width, sampling_ratio, spatial_scale,
              coordinate_transformation_mode):
    oh, ow = output_height, output_width
    (y1, bin_h, grid_h), (x1, bin_w, grid_w) = _roi_geometry(
        rois, spatial_scale, coordinate_transformation_mode == "half_pixel", oh, ow, sampling_ratio)
    n, c, h, w = x.shape
    batch = batch_indices.astype(np.intp).reshape(-1)
    # Channels last: a region's window is a view (avg), a corner's channels one contiguous row (max).
    image = np.ascontiguousarray(x.astype(compute_dtype(x.dtype), copy=False).transpose(0, 2, 3, 1))
    if mode == "avg":
        y = _roi_avg(image, batch, _RoiAxis(y1, bin_h, grid_h, oh, h), _RoiAxis(x1, bin_w, grid_w, ow, w),
                     np.maximum(grid_h * grid_w, 1))
        return y.astype(x.dtype)
    y = np.empty((len(batch), c, oh, ow), dtype=image.dtype)
    for sel in _roi_groups(grid_h, grid_w, c * oh * ow * 4):
        ay = _RoiAxis(y1[sel], bin_h[sel], grid_h[sel], oh, h)
        ax = _RoiAxis(x1[sel], bin_w[sel], grid_w[sel], ow, w)
        y[sel] = _roi_max(image.reshape(-1, c), batch[sel] * (h * w), ay, ax, w)
    return y.astype(x.dtype)


# -- max_unpool -------------------------------------------------------------------------------------------------
@kernel("max_unpool")
def max_unpool(x, indices, output_shape=None, *, kernel_shape, strides, pads):
    if output_shape is not None:
        shape = tuple(int(d) for d in output_shape)
    else:
        kernel, st, pd = unpool_params({"kernel_shape": kernel_shape, "strides": strides, "pads": pads})
        shape = unpool_shape(x.shape, kernel, st, pd)
    y = np.zeros(math.prod(shape), dtype=x.dtype)
    y[indices.reshape(-1)] = x.reshape(-1)
    return y.reshape(shape)


# -- deform_conv ------------------------------------------------------------------------------------------------
def _tap_offsets(kernel, dilations):
    """[K, r]: each kernel tap's offset from the window's first tap, taps in row-major order."""
    return np.array(list(itertools.product(*(range(0, k * d, d) for k, d in zip(kernel, dilations)))),
                    dtype=np.float64).reshape(-1, len(kernel))


@kernel_factory("deform_conv")
def deform_conv_factory(node, in_types, out_types):
    attrs = node.attrs
    group, offset_group = attrs["group"], attrs["offset_group"]
    out_dtype = np.dtype(out_types[0].dtype)
    weight = ConvertedWeight()

    def run(x, w, offset, b=None, mask=None):
        kernel = w.shape[2:]
        r = len(kernel)
        strides = list(attrs["strides"]) or [1] * r
        dilations = list(attrs["dilations"]) or [1] * r
        pads = list(attrs["pads"]) or [0] * (2 * r)
        n, c = x.shape[:2]
        out = offset.shape[2:]
        k, l = math.prod(kernel), math.prod(out)
        work = compute_dtype(x.dtype)
        xs, w = x.astype(work, copy=False), weight(w, work)
        # Where each (tap, output point) reads along each axis, before the learned offsets: [r, K, L].
        grid = np.stack(np.meshgrid(*(np.arange(o) for o in out), indexing="ij")).reshape(r, 1, l)
        base = grid * np.array(strides).reshape(r, 1, 1) - np.array(pads[:r]).reshape(r, 1, 1) \
            + _tap_offsets(kernel, dilations).T[:, :, None]
        offs = offset.astype(work, copy=False).reshape(n, offset_group, k, r, l)
        masks = None if mask is None else mask.astype(work, copy=False).reshape(n, offset_group, k * l)
        cg = c // offset_group
        cols = np.empty((n, c, k * l), dtype=work)
        for g in range(offset_group):
            coords = [(base[a][None] + offs[:, g, :, a]).reshape(n, k * l).astype(work) for a in range(r)]
            v = sample(xs[:, g * cg:(g + 1) * cg], coords, "linear", "zeros")
            cols[:, g * cg:(g + 1) * cg] = v if masks is None else v * masks[:, g, None]
        m = w.shape[0]
        # Grouped GEMM: [group, M/group, C/group*K] @ [N, group, C/group*K, L].
        y = np.matmul(w.reshape(group, m // group, -1), cols.reshape(n, group, -1, l))
        y = y.reshape(n, m, *out)
        if b is not None:
            y += b.astype(work, copy=False).reshape((1, -1) + (1,) * r)
        return y.astype(out_dtype, copy=False)
    return run
