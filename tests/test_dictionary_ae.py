"""DictionaryAutoencoder: fixed-norm atoms close the rescaling loophole of sparsity penalties."""

from __future__ import annotations

import torch

from helpers.models import DictionaryAutoencoder


def _train(atom_norm, steps=60):
    torch.manual_seed(0)
    model = DictionaryAutoencoder((1, 6, 6), hidden_dim=16, latent_dim=48, atom_norm=atom_norm)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(32, 1, 6, 6)
    for _ in range(steps):
        x_hat, z = model(x)
        loss = ((x_hat - x) ** 2).mean() + 0.5 * z.abs().mean()  # an L1 penalty on the code
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_atoms_keep_their_norm_and_free_ones_grow_under_an_l1_penalty():
    fixed, free = _train(2.0), _train(None)
    norms = fixed.dictionary.weight.norm(dim=0)
    assert torch.allclose(norms, torch.full_like(norms, 2.0), atol=1e-5)
    assert fixed.atoms().shape == (48, 1, 6, 6)
    # the loophole: without the constraint the decoder columns grow while the code shrinks
    assert (
        free.dictionary.weight.norm(dim=0).mean()
        > 1.5 * _train(None, steps=0).dictionary.weight.norm(dim=0).mean()
    )


def test_decoder_reads_the_activation_and_code_is_non_negative():
    torch.manual_seed(0)
    seen = []
    model = DictionaryAutoencoder(
        (1, 4, 4), 8, 12, activation=lambda z: seen.append(z) or torch.tanh(z / 2)
    )
    x_hat, z = model(torch.rand(5, 1, 4, 4))
    assert x_hat.shape == (5, 1, 4, 4) and z.shape == (5, 12) and (z >= 0).all()
    assert seen and seen[0] is z
