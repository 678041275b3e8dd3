"""Train-step timing of the authors' released PyTorch code (kampta/asic), for side-by-side rows.

  ASIC_RELEASED_CODE=/work/.released_asic /work/.released_venv/bin/python \\
      -m benchmarks.released_step --shapes=cpu,released --out=FILE.json     # from the repo root

This driver imports the released code's own modules from the checkout that `ASIC_RELEASED_CODE`
names and calls them in the order of one iteration of its `train.py` `train()` loop; no released
code is copied here, only the glue between calls (indexing a batch, adding the loss terms) is
written anew. It imports neither `asic_jax` nor jax: it runs in a separate virtualenv.

Setup (outside this repository; none of it is committed):

  git clone -q /work/.mirror/kampta+asic/repo /work/.released_asic   # or github.com/kampta/asic
  python3.11 -m venv /work/.released_venv
  /work/.released_venv/bin/pip install torch==2.14.1 torchvision==0.29.1
  /work/.released_venv/bin/pip install kornia==0.9.0 opencv-python-headless==5.1.0.95 \\
      numpy==2.4.6 pillow==13.0.0

(`torch==2.13.0` alone installs, but PyPI's torchvision fails to import beside it.)

One step, as the released loop does it with its defaults (`--loss_fn vgg_ssl`, every weight > 0,
no EMA, no `--use_nbb_parts`, TPS rather than `--disable_tps`): `commons.utils.sample_tuples`
draws batch/2 pairs; `models.asic.Asic` (the U-Net of `thirdparty/unet`) maps the images to flows;
`models.canonical.Canonical.unwarp` samples the canonical grid at the recon size;
`losses.matching_losses.LossCorrsSparse` on the pseudo-matches; `datasets.utils.Augmentor`
(kornia colour jitter + thin-plate spline) for the equivariance term and a second `Asic` pass;
the mask BCE; `losses.reg_losses.total_variation_loss`; the perceptual loss, the released
`thirdparty.lpips.lpips.LPIPS` VGG-16 baseline that `get_perceptual_loss('vgg_ssl')` builds (its
/18 included); the parts loss; `backward()`; two Adam steps with the released
`DecayingCosineAnnealingWarmRestarts` schedules; and the six `.item()` reads of its progress bar.

What differs from running `train.py`, none of which changes the work of a step:
  * data: random images, elliptic masks, 4 quadrant parts + background and random pseudo-matches
    (x, y, similarity, part) in the layout of `datasets.utils.load_nbb`, made here instead of
    read from CUB/SPair and DINO files;
  * weights: random. `get_perceptual_loss` would download the SimCLR VGG weights, so the driver
    builds the same `LPIPS(net='vgg', lpips=False, pnet_rand=True)` with no weight file;
  * `LossCorrsSparse.forward` makes its labels with `device='cuda'`; on a machine without CUDA
    the driver hands that module a `torch` whose `arange` puts them on the CPU;
  * logging, visualisation, checkpoints and wandb (every few hundred steps there) are left out.

Shapes (those of `benchmarks.train_step` and `config_lib.apply_cpu`; 10 images, 45 pairs, 300
matches per pair, grid 128, 4 parts, torch threads 2 unless --threads):
  cpu       128 px, batch 8, widths 16..256 (channel_multiplier 0.25), recon 32
  released  128 px, batch 4, widths 32..512 (channel_multiplier 0.5), recon 64
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time

from benchmarks import host

ENV = 'ASIC_RELEASED_CODE'

SHAPES = {
    'cpu': dict(img=128, batch=8, mf=0.25, recon=32),
    'released': dict(img=128, batch=4, mf=0.5, recon=64),
}
COMMON = dict(grid=128, images=10, matches=300, parts=4)

# The released train.py defaults (base_training_argparse).
WEIGHTS = dict(rec=1.0, tv=15000.0, kp=30.0, equi=1.0, mask=0.1, parts=10.0)
LR, PERIOD, TM, DECAY = 0.003, 10000, 2, 0.9


def fail(message: str) -> None:
  print(f'released_step: {message}', file=sys.stderr)
  sys.exit(2)


def released_path() -> pathlib.Path:
  """The checkout `ASIC_RELEASED_CODE` names; exits 2 with one line when it is unset or wrong."""
  value = os.environ.get(ENV)
  if not value:
    fail(f'set {ENV} to a checkout of kampta/asic (see this module\'s docstring)')
  path = pathlib.Path(value).expanduser().resolve()
  needed = ('train.py', 'models/asic.py', 'models/canonical.py', 'losses/matching_losses.py',
            'thirdparty/lpips/lpips.py', 'datasets/utils.py')
  missing = [p for p in needed if not (path / p).is_file()]
  if missing:
    fail(f'{ENV}={value} is not a checkout of kampta/asic (no {missing[0]})')
  return path


def load_released(path: pathlib.Path) -> dict:
  """Imports torch and the released modules; exits 2 with one line when they will not import."""
  sys.path.insert(0, str(path))
  try:
    # pylint: disable=import-outside-toplevel,import-error
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchvision
    import kornia
    from commons.utils import sample_tuples
    from datasets.utils import Augmentor
    from losses import matching_losses
    from losses.reg_losses import total_variation_loss
    from models.asic import Asic
    from models.canonical import Canonical
    from thirdparty.gangealing.annealing import DecayingCosineAnnealingWarmRestarts
    from thirdparty.lpips.lpips import LPIPS
  except ImportError as error:
    fail(f'cannot import the released code or its dependencies ({error}); run this with the '
         'virtualenv of the docstring')
  return dict(np=np,
              torch=torch,
              F=F,
              torchvision=torchvision,
              kornia=kornia,
              sample_tuples=sample_tuples,
              Augmentor=Augmentor,
              matching_losses=matching_losses,
              total_variation_loss=total_variation_loss,
              Asic=Asic,
              Canonical=Canonical,
              Schedule=DecayingCosineAnnealingWarmRestarts,
              LPIPS=LPIPS)


class _TorchWithArangeOn:
  """`torch`, except that `arange` ignores the device it is asked for and uses `device`.

  Stands in for the name `torch` inside `losses.matching_losses`, whose `LossCorrsSparse`
  hard-codes `device='cuda'` for its labels.
  """

  def __init__(self, torch, device):
    self._torch, self._device = torch, device

  def __getattr__(self, name):
    return getattr(self._torch, name)

  def arange(self, *args, **kwargs):
    kwargs['device'] = self._device
    return self._torch.arange(*args, **kwargs)


def synthetic_data(r: dict, *, img: int, images: int, matches: int, parts: int, device):
  """Images in [-1, 1], masks (N, 1, H, W), part maps (N, H, W) with `parts` = background, and
  pseudo-matches (N, N, M, 4) of (x, y, similarity, part), zero on the diagonal."""
  np, torch = r['np'], r['torch']
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:img, 0:img].astype(np.float32) / (img - 1) * 2 - 1
  masks = np.zeros((images, img, img), np.float32)
  part_maps = np.full((images, img, img), parts, np.int64)
  for n in range(images):
    cx, cy = rng.uniform(-0.15, 0.15, 2)
    rx, ry = rng.uniform(0.45, 0.75, 2)
    inside = ((xx - cx) / rx)**2 + ((yy - cy) / ry)**2 <= 1
    masks[n] = inside
    quadrant = (xx > cx).astype(np.int64) + 2 * (yy > cy).astype(np.int64)  # 0..3
    part_maps[n][inside] = (quadrant[inside] % parts)
  imgs = rng.uniform(-1, 1, (images, 3, img, img)).astype(np.float32)
  kps = np.zeros((images, images, matches, 4), np.float32)
  for a in range(images):
    for b in range(images):
      if a == b:
        continue
      xy = rng.integers(0, img, (matches, 2))
      kps[a, b, :, :2] = xy
      kps[a, b, :, 2] = rng.uniform(0.05, 1.0, matches)
      kps[a, b, :, 3] = part_maps[a][xy[:, 1], xy[:, 0]]
  as_t = lambda a: torch.from_numpy(a).to(device)
  return as_t(imgs), as_t(masks[:, None]), as_t(part_maps), as_t(kps)


def bench(name: str, r: dict, *, steps: int, warmup: int, device) -> dict:
  np, torch, F = r['np'], r['torch'], r['F']
  s = dict(SHAPES[name], **COMMON)
  torch.manual_seed(0)
  np.random.seed(0)
  all_imgs, all_masks, all_parts, pseudo_kps = synthetic_data(r,
                                                              img=s['img'],
                                                              images=s['images'],
                                                              matches=s['matches'],
                                                              parts=s['parts'],
                                                              device=device)

  # The objects train.py's __main__ and train() build, with its defaults.
  stn = r['Asic'](3, s['img'], mf=s['mf'], bilinear=False, padding_mode='border',
                  use_tanh=False).to(device)
  canon = r['Canonical']((1, 4, s['grid'], s['grid']), clamp=False).to(device)
  vgg = r['LPIPS'](net='vgg', lpips=False, pnet_rand=True, pretrained_weights=None,
                   verbose=False).to(device)
  perceptual = lambda x, y: vgg(x, y) / 18.0  # as get_perceptual_loss('vgg_ssl') returns it
  r['matching_losses'].torch = _TorchWithArangeOn(torch, device)
  kp_loss_fn = r['matching_losses'].LossCorrsSparse(flow_size=s['img'], T=1.0).to(device)
  aug = r['Augmentor'](jitter=[0.4, 0.4, 0.2, 0.1],
                       jitter_prob=0.8,
                       gray_prob=0.2,
                       solar_prob=0.2,
                       tps_scale=0.4).to(device)
  t_optim = torch.optim.Adam(stn.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
  c_optim = torch.optim.Adam(canon.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
  t_sched = r['Schedule'](t_optim, T_0=1, T_mult=TM, decay=DECAY)
  c_sched = r['Schedule'](c_optim, T_0=1, T_mult=TM, decay=DECAY)
  resize = torch.nn.Upsample(scale_factor=s['recon'] / s['img'],
                             mode='bilinear',
                             align_corners=True)
  for module in (stn, canon):
    module.requires_grad_(True)
  half, w = s['batch'] // 2, WEIGHTS

  def step(i: int) -> list[float]:
    pairs = r['sample_tuples'](len(all_imgs), count=half)
    src, trg = pairs[:, 0], pairs[:, 1]
    idx = np.concatenate([src, trg])
    imgs, parts, masks = all_imgs[idx], all_parts[idx], all_masks[idx]
    masks_small = resize(masks)
    kp_src, kp_trg = pseudo_kps[src, trg], pseudo_kps[trg, src]
    kp_vis = kp_src[..., 2] > 0
    kp_wt = torch.ones_like(kp_vis).float()
    kp_xy = torch.cat([kp_src, kp_trg])[..., :2]

    flow, delta_flow = stn(imgs)
    unwarped = canon.unwarp(flow, s['recon'])
    kp = kp_loss_fn(flow[:half], flow[half:], kp_xy[:half], kp_xy[half:], kp_vis, kp_wt)

    imgs_t = aug.forward_tps(aug.forward_color(imgs))
    masks_t = aug.forward_tps(masks, fixed=True)
    flow_t = aug.forward_tps(flow.permute(0, 3, 1, 2), fixed=True).permute(0, 2, 3, 1)
    masks_t = torch.where(masks_t > 0.5, 1., 0.)
    masks_t_small = resize(masks_t)
    flow_ft, _ = stn(imgs_t)
    unwarped_ft = canon.unwarp(flow_ft, s['recon'])
    equi = (F.l1_loss(flow_ft, flow_t.detach(), reduction='none') +
            F.l1_loss(flow_t, flow_ft.detach(), reduction='none'))
    equi = (equi * (masks_t * masks)[:, 0, :, :, None]).mean()

    mask = 0.5 * F.binary_cross_entropy_with_logits(unwarped[:, 3:4], masks_small)
    mask = mask + 0.5 * F.binary_cross_entropy_with_logits(unwarped_ft[:, 3:4], masks_t_small)
    tv = r['total_variation_loss'](delta_flow)

    rec = perceptual((unwarped * masks_small)[:, :3], resize(imgs) * masks_small).mean()
    rec_t = perceptual((unwarped_ft * masks_t_small)[:, :3], resize(imgs_t) * masks_t_small)
    rec = 0.5 * rec + 0.5 * rec_t.mean()

    centroids = torch.zeros(s['parts'] + 1, 2, dtype=torch.float, device=device)
    centroids.index_add_(0, parts.reshape(-1), flow.reshape(-1, 2))
    counts = torch.bincount(parts.reshape(-1)).float()
    centroids = (centroids / counts[:, None]).detach()
    part = F.l1_loss(flow, centroids[parts], reduction='none')
    part = (part * masks[:, 0, :, :, None]).mean()

    canon.zero_grad()
    stn.zero_grad()
    total = (w['rec'] * rec + w['tv'] * tv + w['kp'] * kp + w['equi'] * equi + w['mask'] * mask +
             w['parts'] * part)
    total.backward()
    epoch = max(0, i / PERIOD)
    t_optim.step()
    t_sched.step(epoch)
    c_optim.step()
    c_sched.step(epoch)
    return [v.item() for v in (rec, tv, kp, equi, mask, part)]  # the progress bar's reads

  for i in range(1, warmup + 1):
    values = step(i)
  if not all(np.isfinite(values)):
    raise RuntimeError(f'non-finite losses at shape {name}: {values}')
  times = []
  for i in range(warmup + 1, warmup + steps + 1):
    start = time.perf_counter()
    step(i)
    times.append(time.perf_counter() - start)
  ms = 1000 * statistics.median(times)
  return dict(shape=name,
              implementation=f"released (PyTorch {torch.__version__.split('+')[0]})",
              dtype='float32',
              batch=s['batch'],
              img=s['img'],
              recon=s['recon'],
              grid=s['grid'],
              widths=f"{int(64 * s['mf'])}..{int(1024 * s['mf'])}",
              images=s['images'],
              pairs=s['images'] * (s['images'] - 1) // 2,
              matches=s['matches'],
              steps=steps,
              warmup=warmup,
              threads=torch.get_num_threads(),
              ms_per_step=ms,
              ms_min=1000 * min(times),
              ms_max=1000 * max(times),
              steps_per_s=1000 / ms,
              peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
              loadavg_1min_after=os.getloadavg()[0])


def machine(r: dict, path: pathlib.Path, device) -> dict:
  """What the figures were measured on, in the form of `benchmarks.common.machine`."""
  cpu = host.cpu_name()
  try:
    commit = subprocess.run(['git', '-C', str(path), 'rev-parse', 'HEAD'],
                            capture_output=True,
                            text=True,
                            check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    commit = None
  return dict(cpu=cpu,
              cores=os.cpu_count(),
              platform=str(device),
              device=str(device),
              num_devices=1,
              torch=r['torch'].__version__,
              torchvision=r['torchvision'].__version__,
              kornia=r['kornia'].__version__,
              python=platform.python_version(),
              released_commit=commit)


COLUMNS = [('shape', 'shape'), ('implementation', 'implementation'), ('batch', 'batch'),
           ('img', 'px'), ('recon', 'recon'), ('grid', 'grid'), ('widths', 'U-Net widths'),
           ('images', 'N'), ('pairs', 'pairs'), ('matches', 'matches/pair'),
           ('ms_per_step', 'ms/step'), ('steps_per_s', 'steps/s'),
           ('peak_rss_gb', 'process peak RSS GB')]


def markdown_table(rows: list[dict]) -> str:
  cell = lambda v: '–' if v is None else f'{v:.3g}' if isinstance(v, float) else str(v)
  lines = ['| ' + ' | '.join(h for _, h in COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
  lines += ['| ' + ' | '.join(cell(row.get(k)) for k, _ in COLUMNS) + ' |' for row in rows]
  return '\n'.join(lines)


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--shapes', default='cpu,released', help='comma list: cpu, released')
  parser.add_argument('--steps', type=int, default=10, help='timed steps per shape')
  parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
  parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
  parser.add_argument('--out', default=None, help='JSON file for the records')
  args = parser.parse_args(argv)
  names = args.shapes.split(',')
  unknown = [n for n in names if n not in SHAPES]
  if unknown:
    parser.error(f'unknown shape {unknown[0]!r}; known: {", ".join(SHAPES)}')
  path = released_path()
  r = load_released(path)
  torch = r['torch']
  torch.set_num_threads(args.threads)
  device = torch.device('cpu')
  records = []
  for name in names:
    records.append(bench(name, r, steps=args.steps, warmup=args.warmup, device=device))
    print(records[-1], file=sys.stderr, flush=True)
  print(markdown_table(records))
  if args.out:
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(dict(machine=machine(r, path, device),
                        date=datetime.date.today().isoformat(),
                        records=records),
                   indent=2))
  return records


if __name__ == '__main__':
  main()
