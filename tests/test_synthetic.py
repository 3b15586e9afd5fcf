import numpy as np

from napari_samphase.core.image.synthetic import PARTICLE_PHASES, make_micrograph


def test_micrograph_ground_truth_is_consistent():
    m = make_micrograph((200, 240), n_particles=25, n_phases=3, seed=1)
    assert m.image.shape == m.instances.shape == m.phases.shape == (200, 240)
    ids = np.unique(m.instances)[1:]
    assert len(ids) >= 15
    # every instance has exactly one phase, and phases follow instance_phase
    assert (m.phases == m.instance_phase[m.instances]).all()
    assert set(np.unique(m.phases)) <= {0, 1, 2, 3}
    # phases really differ in gray level: dark < matrix < bright
    mean = [m.image[m.phases == k].mean() for k in range(3)]
    assert mean[1] < mean[0] < mean[2]
    assert PARTICLE_PHASES[0].gray < PARTICLE_PHASES[1].gray


def test_particles_do_not_touch_and_generation_is_deterministic():
    from scipy import ndimage as ndi

    a = make_micrograph((128, 128), n_particles=20, seed=3)
    b = make_micrograph((128, 128), n_particles=20, seed=3)
    assert (a.image == b.image).all() and (a.instances == b.instances).all()
    for i in np.unique(a.instances)[1:]:
        grown = ndi.binary_dilation(a.instances == i)
        others = a.instances[grown]
        assert set(np.unique(others)) <= {0, i}
