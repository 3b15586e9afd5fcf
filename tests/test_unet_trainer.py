"""Training the U-Net: weight maps, elastic deformation, the loss, the run (accuracy,
scribbles, checkpoints, cancel, resume, retraining from earlier weights).

Tiny networks (depth 2, width 4-8) on small generated micrographs, a few epochs each.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.synthetic import make_micrograph
from napari_samphase.core.progress import Cancelled
from napari_samphase.core.training.augment import elastic_field, warp
from napari_samphase.core.training.weightmap import (
    border_term,
    border_weights,
    class_balance_weights,
    phase_weights,
)


@pytest.fixture(scope="module", autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- weight maps ------------------------------------------------------------------------


def test_class_balance_weights_equalise_the_classes_and_skip_ignored_pixels():
    labels = np.zeros((10, 10), np.int32)
    labels[:2] = 5  # 20 px of class 5, 60 of class 0, 20 ignored (9)
    labels[-2:] = 9
    w = class_balance_weights(labels, ignore=9)
    assert w.dtype == np.float32
    assert (w[labels == 9] == 0).all()
    # each class carries the same total weight; the mean over labelled pixels is 1
    assert w[labels == 5].sum() == pytest.approx(w[labels == 0].sum())
    assert w[labels != 9].mean() == pytest.approx(1.0)
    # counts over a whole training set instead of this image
    w = class_balance_weights(labels, ignore=9, counts={0: 100, 5: 100})
    assert w[0, 0] == pytest.approx(w[5, 0])


def test_border_term_matches_a_hand_computed_case_on_a_line():
    # objects 1 (px 0-2) and 2 (px 8-10) on a line, gap px 3-7
    inst = np.zeros((1, 16), np.int32)
    inst[0, 0:3], inst[0, 8:11] = 1, 2
    w0, sigma = 10.0, 5.0
    term = border_term(inst, w0, sigma)
    assert (term[inst > 0] == 0).all()
    # in the gap the distances to the two objects sum to 6 px everywhere
    np.testing.assert_allclose(term[0, 3:8], w0 * np.exp(-(6**2) / (2 * sigma**2)), rtol=1e-6)
    # right of object 2: x=12 is 2 px from it and 10 px from object 1
    assert term[0, 12] == pytest.approx(w0 * np.exp(-(12**2) / (2 * sigma**2)), rel=1e-6)
    assert term[0, 15] == pytest.approx(w0 * np.exp(-(18**2) / (2 * sigma**2)), rel=1e-6)
    # the whole map adds the class weights
    ones = np.ones(inst.shape, np.float32)
    np.testing.assert_allclose(border_weights(inst, w0, sigma, class_weights=ones), ones + term)
    w = border_weights(inst, w0, sigma)
    np.testing.assert_allclose(w - term, class_balance_weights(inst > 0), rtol=1e-6)


def test_border_term_matches_the_formula_in_2d_and_peaks_between_close_objects():
    inst = np.zeros((60, 80), np.int32)
    inst[10:20, 10:20] = 1
    inst[10:20, 23:33] = 2  # 3 px gap to object 1
    inst[40:50, 60:70] = 3  # far from both
    sigma = 4.0
    term = border_term(inst, 10.0, sigma)
    # brute force: distance of every pixel to every object, two smallest
    yy, xx = np.mgrid[:60, :80]
    d = []
    for i in (1, 2, 3):
        py, px = np.nonzero(inst == i)
        d.append(
            np.sqrt((yy[..., None] - py) ** 2 + (xx[..., None] - px) ** 2)
            .min(-1)
            .astype(np.float32)
        )
    d = np.sort(np.stack(d), 0)
    expected = 10.0 * np.exp(-((d[0] + d[1]) ** 2) / (2 * sigma**2)) * (inst == 0)
    near = expected > 1e-2  # the term is cut where it is negligible
    np.testing.assert_allclose(term[near], expected[near], rtol=1e-5)
    assert np.abs(term - expected).max() < 1.01e-2
    # the peak: in the gap between the two close objects
    peak = np.unravel_index(term.argmax(), term.shape)
    assert 10 <= peak[0] < 20 and 20 <= peak[1] < 23
    assert term[15, 21] > 5 * term[45, 72]  # beside the lone object


def test_phase_weights_use_components_of_each_class_and_not_on_scribbles():
    classes = np.zeros((40, 40), np.int32)
    classes[5:15, 5:15] = 2
    classes[5:15, 17:27] = 2  # same class, 2 px apart: two components
    w = phase_weights(classes, w0=10.0, sigma=5.0)
    gap = w[10, 15:17]
    assert (gap > 5).all() and w[30, 35] < 2
    inst = np.zeros_like(classes)
    inst[5:15, 5:15], inst[5:15, 17:27] = 1, 2
    np.testing.assert_allclose(w, border_weights(inst, 10.0, 5.0), rtol=1e-6)
    # w0 = 0: class balance only
    np.testing.assert_allclose(phase_weights(classes, w0=0.0), class_balance_weights(classes))
    # scribbles (ignored pixels): class balance only, zero where ignored
    sparse = classes.copy()
    sparse[20:] = 7
    w = phase_weights(sparse, ignore=7, w0=10.0)
    np.testing.assert_allclose(w, class_balance_weights(sparse, ignore=7))


def test_border_term_cost_is_bounded_by_windows():
    """Many objects on a large image: per-object windows, not an image-sized pass
    per object."""
    import time

    m = make_micrograph((1024, 1024), n_particles=400, radius=(4, 10), seed=0)
    t0 = time.perf_counter()
    term = border_term(m.instances.astype(np.int32), 10.0, 5.0)
    assert time.perf_counter() - t0 < 10
    assert term.max() > 1


# -- elastic deformation ---------------------------------------------------------------


def test_elastic_field_is_a_smooth_interpolation_of_a_coarse_grid():
    rng = np.random.default_rng(0)
    field = elastic_field((97, 121), rng, grid=3, sigma=10.0)
    assert field.shape == (2, 97, 121) and field.dtype == np.float32
    again = elastic_field((97, 121), np.random.default_rng(0), grid=3, sigma=10.0)
    np.testing.assert_array_equal(field, again)
    # the coarse displacements: normal(0, sigma) drawn first, (dy, dx) x grid x grid
    coarse = np.random.default_rng(0).normal(0.0, 10.0, (2, 3, 3))
    # the field passes through them at the grid points (spread over the whole shape)
    for gy, gx in np.ndindex(3, 3):
        assert field[:, 48 * gy, 60 * gx] == pytest.approx(coarse[:, gy, gx], abs=1e-3)
    # smooth: neighbours differ by a small fraction of the displacement
    assert np.abs(np.diff(field, axis=2)).max() < 0.1 * np.abs(field).max()
    # many draws: the grid displacements have the asked standard deviation
    draws = [elastic_field((5, 5), rng, 3, 10.0)[:, ::2, ::2] for _ in range(300)]
    assert np.std(draws) == pytest.approx(10.0, rel=0.1)


def test_warping_image_and_labels_with_one_field_keeps_them_aligned():
    m = make_micrograph((128, 128), n_particles=12, n_phases=2, seed=3)
    labels = m.phases.astype(np.int32)
    image = labels.astype(np.float32) * 100.0
    field = elastic_field(labels.shape, np.random.default_rng(1), grid=3, sigma=10.0)
    wi = warp(image, field, order=3)
    wl = warp(labels, field, order=0)
    assert wl.dtype == labels.dtype and set(np.unique(wl)) <= set(np.unique(labels))
    assert np.abs(field).max() > 5  # a real deformation: labels moved
    assert (wl != labels).mean() > 0.02
    recovered = np.clip(np.round(wi / 100.0), 0, 2).astype(np.int32)
    wrong = recovered != wl
    # disagreement only on a thin band at the warped label boundaries
    from scipy import ndimage as ndi

    edges = ndi.morphological_gradient(wl, size=3) > 0
    band = ndi.binary_dilation(edges, iterations=1)
    assert not (wrong & ~band).any()
    assert wrong.mean() < 0.02
    # another field for the labels: far from aligned (the check can fail)
    other = warp(labels, elastic_field(labels.shape, np.random.default_rng(2)), order=0)
    assert (recovered != other).mean() > 5 * wrong.mean()


def test_warp_crops_with_an_origin_and_mirrors_at_the_borders():
    image = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    zero = np.zeros((2, 8, 12), np.float32)
    np.testing.assert_array_equal(warp(image, zero, order=0, origin=(5, 7)), image[5:13, 7:19])
    np.testing.assert_allclose(
        warp(image, zero, order=3, origin=(5, 7)), image[5:13, 7:19], atol=1e-3
    )
    out = warp(image, zero, order=0, origin=(-3, 25))  # mirror beyond the edges
    padded = np.pad(image, ((3, 0), (0, 7)), mode="reflect")
    np.testing.assert_array_equal(out, padded[0:8, 25:37])
    rgb = np.stack([image, image * 2, image * 3], -1)
    shifted = np.zeros((2, 8, 12), np.float32)
    shifted[1] = 1.0  # one px to the right
    np.testing.assert_array_equal(warp(rgb, shifted, order=0)[..., 2], rgb[:8, 1:13, 2])


# -- the trainer --------------------------------------------------------------------------

from napari_samphase.core.training.unet_trainer import (  # noqa: E402
    Item,
    UNetTrainConfig,
    UNetTrainer,
    train_unet,
    weighted_cross_entropy,
)
from napari_samphase.core.unet.checkpoint import load_unet, read_unet, save_unet  # noqa: E402
from napari_samphase.core.unet.predictor import UNetPredictor, predict  # noqa: E402

FAST = UNetTrainConfig(
    depth=2,
    width=4,
    epochs=1,
    crop=48,
    crops_per_image=2,
    batch_size=4,
    val_fraction=0.34,
    device="cpu",
)


def _micrograph(seed, shape=(96, 96)):
    return make_micrograph(shape, n_particles=10, n_phases=1, radius=(6, 14), seed=seed)


@pytest.fixture(scope="module")
def pairs():
    return [(f"img{s}", m.image, m.phases) for s, m in ((s, _micrograph(s)) for s in range(3))]


def _history(result):
    return [(r.epoch, r.train_loss, r.val_loss, r.val_iou) for r in result.history]


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def _accuracy(labels, truth):
    return float((labels == truth).mean())


def test_one_step_on_a_fixed_batch_lowers_the_loss(pairs):
    for padding in ("same", "valid"):
        trainer = UNetTrainer(replace(FAST, padding=padding, crop=40))
        items = [Item(*p) for p in pairs]
        trainer.build(items)
        samples = [trainer.prepare(i) for i in items]
        batch = trainer.batch(samples, np.random.default_rng(0))
        if padding == "valid":  # labels cropped to the network's output
            assert batch[1].shape[-1] == batch[0].shape[-1] - 2 * trainer.unet_config.margin
        trainer.setup(10)
        before = trainer.loss(*batch)
        trainer.step(before)
        with torch.no_grad():
            after = trainer.loss(*batch)
        assert float(after) < float(before.detach())


def test_unlabelled_pixels_contribute_nothing_to_the_loss():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 16, 16, generator=gen, requires_grad=True)
    target = torch.randint(0, 3, (2, 16, 16), generator=gen)
    weights = torch.rand(2, 16, 16, generator=gen) + 0.5
    unlabelled = torch.rand(2, 16, 16, generator=gen) < 0.5
    target[unlabelled] = -1
    weights[unlabelled] = 0.0
    loss = weighted_cross_entropy(logits, target, weights)
    loss.backward()
    loss = loss.detach()
    assert (logits.grad.abs().sum(1)[unlabelled] == 0).all()
    assert (logits.grad.abs().sum(1)[~unlabelled] > 0).all()
    # whatever the weights say there: -1 is never a class
    same = weighted_cross_entropy(logits.detach(), target, weights + unlabelled.float())
    assert float(same) == pytest.approx(float(loss))
    # labelling those pixels instead does change the loss (the check can fail)
    labelled = target.clone()
    labelled[unlabelled] = 0
    other = weighted_cross_entropy(logits.detach(), labelled, weights + unlabelled.float())
    assert abs(float(other) - float(loss)) > 1e-3


def test_prepare_marks_ignored_pixels_unlabelled():
    m = _micrograph(0)
    labels = m.phases.astype(np.int32) + 1  # classes 1, 2; 0 = not painted
    labels[:, ::2] = 0
    trainer = UNetTrainer(replace(FAST, ignore=0))
    item = Item("a", m.image, labels)
    trainer.build([item])
    assert trainer.classes.tolist() == [1, 2]
    s = trainer.prepare(item)
    assert (s.target[labels == 0] == -1).all() and (s.weights[labels == 0] == 0).all()
    assert (s.target[labels > 0] == labels[labels > 0] - 1).all()
    assert (s.weights[labels > 0] > 0).all()
    assert s.pixels == int((labels > 0).sum()) and len(s.labelled) == s.pixels
    # crops are centred on painted pixels
    trainer.config = replace(trainer.config, elastic=False, augment=False)
    rng = np.random.default_rng(0)
    assert all((trainer.crop(s, rng)[1][24, 24] >= 0) for _ in range(20))


def test_training_on_a_two_phase_micrograph_reaches_high_accuracy(tmp_path):
    import time

    train = [
        (f"m{s}", *(lambda m: (m.image, m.phases))(_micrograph(s, (128, 128)))) for s in range(2)
    ]
    config = replace(FAST, width=8, epochs=6, crop=64, crops_per_image=8, val_fraction=0.0, lr=3e-3)
    t0 = time.perf_counter()
    result = train_unet(train, config, tmp_path / "u.pth", class_names=["matrix", "dark"])
    seconds = time.perf_counter() - t0
    test = _micrograph(11, (160, 144))
    labels = predict(tmp_path / "u.pth", test.image, device="cpu")
    assert labels.shape == test.phases.shape and labels.dtype == np.uint8
    assert _accuracy(labels, test.phases) > 0.9
    inter = ((labels == 1) & (test.phases == 1)).sum()
    assert inter / ((labels == 1) | (test.phases == 1)).sum() > 0.7  # the particles too
    assert result.stopped == "epochs" and result.metadata["class_names"] == ["matrix", "dark"]
    assert seconds < 30


def test_scribble_training_ignores_unlabelled_pixels(tmp_path):
    from scipy import ndimage as ndi

    def scribbles(m):
        # strokes: every 12th row, inside each phase eroded by 2 px; the rest unpainted
        labels = np.full(m.phases.shape, 255, np.int32)
        for value in (0, 1):
            inside = ndi.binary_erosion(m.phases == value, iterations=2)
            stroke = np.zeros_like(inside)
            stroke[6::12] = True
            labels[inside & stroke] = value
        return labels

    ms = [_micrograph(s, (128, 128)) for s in (3, 4)]
    pairs = [(f"s{i}", m.image, scribbles(m)) for i, m in enumerate(ms)]
    assert (pairs[0][2] == 255).mean() > 0.9
    config = replace(
        FAST, width=8, epochs=6, crop=64, crops_per_image=8, val_fraction=0.0, ignore=255, lr=3e-3
    )
    result = train_unet(pairs, config, tmp_path / "s.pth")
    assert result.metadata["classes"] == [0, 1]  # 255 is not a class
    test = _micrograph(12, (128, 128))
    assert _accuracy(predict(tmp_path / "s.pth", test.image, device="cpu"), test.phases) > 0.85


def test_checkpoint_round_trip(pairs, tmp_path):
    out = tmp_path / "u.pth"
    trainer = UNetTrainer(replace(FAST, val_fraction=0.0), class_names={1: "dark"})
    result = trainer.fit(pairs, out)
    assert _files(tmp_path) == ["u.pth", "u.pth.state"]
    model, meta = load_unet(out)
    assert meta["classes"] == [0, 1] and meta["class_names"] == ["class 0", "dark"]
    assert meta["normalisation"]["method"] == "percentile"
    assert meta["unet"]["depth"] == 2 and meta["config"]["width"] == 4
    assert meta["metrics"]["best_epoch"] == result.best_epoch == 1
    assert meta["training_data"]["train"] == ["img0", "img1", "img2"]
    assert len(meta["sha256"]) == len(meta["weights_sha256"]) == 64
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value.cpu()), name
    image = _micrograph(5).image
    kept = UNetPredictor(trainer.model, result.metadata).predict(image, probabilities=True)
    loaded = predict(out, image, probabilities=True, device="cpu")
    np.testing.assert_array_equal(kept[0], loaded[0])
    np.testing.assert_allclose(kept[1], loaded[1], atol=1e-6)


def test_save_unet_keeps_class_values_and_refuses_bad_files(tmp_path):
    from napari_samphase.core.unet.config import UNetConfig
    from napari_samphase.core.unet.inputs import NORMALISATION
    from napari_samphase.core.unet.model import UNet

    torch.manual_seed(0)
    model = UNet(UNetConfig(in_channels=3, classes=3, depth=2, width=4)).eval()
    path = save_unet(
        tmp_path / "a.pth", model, model.config, [0, 128, 255], ["a", "b", "c"], NORMALISATION
    )
    predictor = UNetPredictor.from_checkpoint(path, device="cpu")
    assert predictor.classes.tolist() == [0, 128, 255] and predictor.class_names == ["a", "b", "c"]
    rgb = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    labels = predictor.predict(rgb)
    assert set(np.unique(labels)) <= {0, 128, 255} and labels.dtype == np.uint8
    with pytest.raises(InputError, match="3 class values and 2 names"):
        save_unet(tmp_path / "b.pth", model, model.config, [0, 1, 2], ["a", "b"], NORMALISATION)
    # a file that is not a checkpoint, a foreign one, one with pickled objects, altered weights
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    torch.save({"model": {}, "samphase": {}}, tmp_path / "sam.pth")
    torch.save(
        {"model": model.state_dict(), "samphase_unet": {"x": Item}}, tmp_path / "pickled.pth"
    )
    obj = torch.load(path, weights_only=True)
    obj["model"]["head.bias"] += 1
    torch.save(obj, tmp_path / "altered.pth")
    for name, match in [
        ("junk.pth", "not a readable U-Net checkpoint"),
        ("sam.pth", "not a U-Net checkpoint"),
        ("pickled.pth", "not a readable U-Net checkpoint"),
        ("altered.pth", "altered or damaged"),
        ("missing.pth", "no such"),
    ]:
        with pytest.raises(InputError, match=match):
            load_unet(tmp_path / name)
    assert read_unet(path)[1]["classes"] == [0, 128, 255]


def test_cancel_after_the_first_epoch_keeps_it(pairs, tmp_path):
    calls = []

    def progress(done, total, message):
        calls.append((done, total, message))
        if message.startswith("epoch 2/"):
            raise Cancelled("stop")

    result = train_unet(pairs, replace(FAST, epochs=3), tmp_path / "u.pth", progress=progress)
    assert result.stopped == "cancelled" and result.best_epoch == 1
    assert [r.epoch for r in result.history] == [1]
    assert _files(tmp_path) == ["u.pth", "u.pth.state"]
    load_unet(tmp_path / "u.pth")
    steps = [c for c in calls if " loss " in c[2]]
    assert steps[0][:2] == (1, 3) and steps[0][2].startswith("epoch 1/3 loss ")
    assert any("validation" in c[2] for c in calls)  # cancellable while validating too


def test_cancel_before_any_epoch_writes_nothing(pairs, tmp_path):
    def progress(done, total, message):
        if done == 1:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        train_unet(pairs, FAST, tmp_path / "u.pth", progress=progress)
    assert _files(tmp_path) == []


def test_resume_continues_where_the_run_stopped(pairs, tmp_path):
    config = replace(FAST, epochs=2)
    whole = train_unet(pairs, config, tmp_path / "whole.pth")

    def stop_at_epoch_2(done, total, message):
        if message.startswith("epoch 2/"):
            raise Cancelled("stop")

    out = tmp_path / "parts.pth"
    first = train_unet(pairs, config, out, progress=stop_at_epoch_2)
    assert [r.epoch for r in first.history] == [1]
    with pytest.raises(InputError, match="lr"):
        train_unet(pairs, replace(config, lr=1e-2), out, resume=True)
    with pytest.raises(InputError, match="images differ"):
        train_unet(pairs[::-1], config, out, resume=True)
    resumed = train_unet(pairs, config, out, resume=True)
    assert [r.epoch for r in resumed.history] == [1, 2]
    assert _history(resumed) == _history(whole)  # as if never interrupted
    more = train_unet(pairs, replace(config, epochs=3), out, resume=True)
    assert [r.epoch for r in more.history] == [1, 2, 3]
    with pytest.raises(InputError, match="nothing to continue"):
        train_unet(pairs, config, tmp_path / "never.pth", resume=True)


def test_early_stop_and_time_limit(pairs, tmp_path):
    trainer = UNetTrainer(replace(FAST, epochs=6, patience=2))
    losses = iter([0.5, 0.4, 0.45, 0.41, 0.3, 0.2])
    trainer.validate = lambda samples, progress=None: (next(losses), 0.5)
    result = trainer.fit(pairs, tmp_path / "a.pth")
    assert result.stopped == "early_stop" and result.best_epoch == 2
    assert [r.val_loss for r in result.history] == [0.5, 0.4, 0.45, 0.41]
    assert read_unet(tmp_path / "a.pth")[1]["metrics"]["best_epoch"] == 2
    result = train_unet(pairs, replace(FAST, epochs=5, max_minutes=1e-6), tmp_path / "b.pth")
    assert result.stopped == "time" and len(result.history) == 1


def test_init_continues_from_earlier_weights_with_new_classes(pairs, tmp_path):
    first = train_unet(pairs, FAST, tmp_path / "a.pth", class_names=["matrix", "dark"])
    old, meta = load_unet(first.checkpoint)
    three = [
        (n, im, np.where(lab == 1, 5, lab) + (np.arange(lab.shape[1]) > 80)) for n, im, lab in pairs
    ]
    trainer = UNetTrainer(FAST, init=first.checkpoint)
    trainer.build([Item(*p) for p in three])
    assert trainer.classes.tolist() == [0, 1, 5, 6]
    assert trainer.class_names == ["matrix", "dark", "class 5", "class 6"]
    new = trainer.model.state_dict()
    for name, value in old.state_dict().items():
        if name.startswith("head."):
            assert torch.equal(new[name][:2], value)  # classes 0 and 1 keep their outputs
            assert not torch.equal(new[name][2:3], value[1:2])
        else:
            assert torch.equal(new[name], value), name
    with pytest.raises(InputError, match="width 4, not width 8"):
        UNetTrainer(replace(FAST, width=8), init=first.checkpoint).build([Item(*p) for p in pairs])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"padding": "full"}, "padding"),
        ({"class_weights": "inverse"}, "class_weights"),
        ({"epochs": 0}, "epochs"),
        ({"crop": 4}, "crop"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"lr": 0.0}, "lr"),
        ({"sigma": 0.0}, "sigma"),
        ({"ignore": 1.5}, "ignore"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_options_raise_before_any_file(pairs, tmp_path, change, match):
    with pytest.raises(InputError, match=match):
        train_unet(pairs, replace(FAST, **change), tmp_path / "u.pth")
    assert _files(tmp_path) == []


def test_bad_data_raises_before_any_file(pairs, tmp_path):
    name, image, labels = pairs[0]
    for bad, match in [
        ([(name, image, np.zeros_like(labels))], "at least two"),
        ([(name, image, labels[:50])], "does not match"),
        ([pairs[0], (name, *pairs[1][1:])], "rename one"),
        ([(name, image, np.full_like(labels, 7))], "at least two"),
    ]:
        with pytest.raises(InputError, match=match):
            train_unet(bad, FAST, tmp_path / "u.pth")
    with pytest.raises(InputError, match="no labelled pixel"):
        train_unet(
            [pairs[0], (pairs[1][0], pairs[1][1], np.full_like(labels, 9))],
            replace(FAST, ignore=9, val_fraction=0.0),
            tmp_path / "u.pth",
        )
    assert _files(tmp_path) == []


def test_valid_convolutions_train_validate_and_predict_whole_images(pairs, tmp_path):
    config = replace(FAST, padding="valid", crop=40, epochs=2)
    result = train_unet(pairs, config, tmp_path / "v.pth")
    assert all(r.val_loss is not None and 0 <= r.val_iou <= 1 for r in result.history)
    assert result.metadata["unet"]["padding"] == "valid"
    image = _micrograph(7, (70, 83)).image
    labels, probs = predict(tmp_path / "v.pth", image, probabilities=True, device="cpu", tile=64)
    assert labels.shape == (70, 83) and probs.shape == (2, 70, 83)
