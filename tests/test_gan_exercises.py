"""06 GAN and 07 LSGAN exercises: their hidden tests and the grader's comparison as an oracle.

As in tests/exercise_judge.py, the hidden block of each test cell runs once with the reference
(extracted from solutions/) and once with every implementation below, exactly as in a kernel
(records under COURSE_RECORD_DIR), and ``autograder.compare`` judges the two sets of records.
Implementations are compiled from source in a ``__main__`` namespace, as notebook cells are,
so the visible checks (``check_defined_here``) and the source checks see them as a student's.
Correct alternatives must pass everything; classic mistakes must fail, and be named.
"""

from __future__ import annotations

import linecache
import textwrap

import pytest

from autograder import paths
from tests.exercise_judge import ExerciseJudge, Outcome, assert_feedback

IMPORTS = (
    "import copy\nimport math\nimport numpy as np\nimport torch\n"
    "import torch.nn.functional as F\nfrom torch import nn\n"
)


JUDGES = {
    name: ExerciseJudge(name, imports=IMPORTS, main=True, all_names=True)
    for name in ("06_gan", "07_lsgan")
    if (paths.SOLUTIONS / f"{name}.ipynb").exists()
}

_counter = iter(range(10**6))


def define(source: str, name: str):
    """Compile ``source`` as a notebook cell would be (module ``__main__``) and return ``name``."""
    source = textwrap.dedent(source)
    filename = f"<alternative-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    ns = {"__name__": "__main__"}
    exec(IMPORTS, ns)
    exec(compile(source, filename, "exec"), ns)
    obj = ns[name]
    obj.__source__ = source
    return obj


@pytest.fixture(scope="module")
def reference_records(tmp_path_factory):
    cache: dict = {}

    def get(notebook: str, exercise: str) -> dict:
        if (notebook, exercise) not in cache:
            directory = tmp_path_factory.mktemp("ref")
            cache[notebook, exercise] = JUDGES[notebook].reference_records(exercise, directory)
        return cache[notebook, exercise]

    return get


@pytest.fixture
def judge(reference_records, tmp_path, monkeypatch):
    def run(notebook: str, exercise: str, fn) -> Outcome:
        ref = reference_records(notebook, exercise)
        return JUDGES[notebook].judge(exercise, fn, ref, tmp_path / "student", monkeypatch)

    return run


# ------------------------------------------------------------------- correct alternatives
CORRECT = {
    ("06_gan", "sample_noise", "normal"): """
        def sample_noise(batch_size, noise_dim):
            return torch.normal(0.0, 1.0, size=(batch_size, noise_dim))
    """,
    ("06_gan", "sample_noise", "tuple_shape"): """
        def sample_noise(batch_size, noise_dim):
            return torch.randn((batch_size, noise_dim), dtype=torch.float32)
    """,
    ("06_gan", "discriminator_loss", "softplus"): """
        def discriminator_loss(real_logits, fake_logits):
            return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    """,
    ("06_gan", "discriminator_loss", "explicit_labels"): """
        def discriminator_loss(real_logits, fake_logits):
            ones = torch.ones(real_logits.shape[0], 1, dtype=real_logits.dtype)
            zeros = torch.zeros(fake_logits.shape[0], 1, dtype=fake_logits.dtype)
            criterion = nn.BCEWithLogitsLoss()
            return criterion(real_logits, ones) + criterion(fake_logits, zeros)
    """,
    ("06_gan", "discriminator_loss", "logsigmoid"): """
        def discriminator_loss(real_logits, fake_logits):
            return -F.logsigmoid(real_logits).mean() - F.logsigmoid(-fake_logits).mean()
    """,
    ("06_gan", "generator_loss", "softplus"): """
        def generator_loss(fake_logits):
            return F.softplus(-fake_logits).mean()
    """,
    ("06_gan", "generator_loss", "bce_module"): """
        def generator_loss(fake_logits):
            return nn.BCEWithLogitsLoss()(fake_logits, torch.ones_like(fake_logits))
    """,
    ("06_gan", "make_optimizers", "positional"): """
        def make_optimizers(G, D, lr=2e-4, betas=(0.5, 0.999), step_size=5, gamma=0.5):
            from torch.optim import Adam
            from torch.optim.lr_scheduler import StepLR
            opts = [Adam(list(net.parameters()), lr, betas) for net in (G, D)]
            return (*opts, *(StepLR(opt, step_size, gamma) for opt in opts))
    """,
    ("06_gan", "gan_train_step", "no_grad_then_regenerate"): """
        def gan_train_step(G, D, real, opt_G, opt_D, noise_dim):
            z = sample_noise(len(real), noise_dim).to(real.device)
            with torch.no_grad():
                x_fake = G(z)
            D.zero_grad()
            loss_D = discriminator_loss(D(real), D(x_fake))
            loss_D.backward()
            opt_D.step()
            G.zero_grad()
            loss_G = generator_loss(D(G(z)))
            loss_G.backward()
            opt_G.step()
            return dict(loss_D=float(loss_D), loss_G=float(loss_G))
    """,
    ("06_gan", "gan_train_step", "one_D_pass_and_zero_first"): """
        def gan_train_step(G, D, real, opt_G, opt_D, noise_dim):
            opt_D.zero_grad()
            opt_G.zero_grad()
            x_fake = G(sample_noise(real.shape[0], noise_dim))
            logits = D(torch.cat([real, x_fake.detach()]))
            loss_D = discriminator_loss(logits[: len(real)], logits[len(real) :])
            loss_D.backward()
            opt_D.step()
            opt_G.zero_grad()
            loss_G = generator_loss(D(x_fake))
            loss_G.backward()
            opt_G.step()
            return {"loss_D": loss_D.item(), "loss_G": loss_G.item()}
    """,
    ("06_gan", "Generator", "functional_32_channels"): """
        class Generator(nn.Module):
            def __init__(self, noise_dim=100):
                super().__init__()
                self.fc = nn.Linear(noise_dim, 128 * 7 * 7)
                self.bn = nn.BatchNorm2d(128)
                self.up1 = nn.ConvTranspose2d(128, 32, 4, stride=2, padding=1)
                self.up2 = nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1)

            def forward(self, z):
                h = F.relu(self.bn(self.fc(z).view(-1, 128, 7, 7)))
                return torch.sigmoid(self.up2(F.relu(self.up1(h))))
    """,
    ("06_gan", "Discriminator", "functional"): """
        class Discriminator(nn.Module):
            def __init__(self):
                super().__init__()
                self.c1 = nn.Conv2d(1, 32, 4, 2, 1)
                self.c2 = nn.Conv2d(32, 128, 4, 2, 1)
                self.fc = nn.Linear(128 * 7 * 7, 1)

            def forward(self, x):
                h = F.leaky_relu(self.c2(F.leaky_relu(self.c1(x), 0.2)), 0.2)
                return self.fc(h.reshape(len(x), -1))
    """,
    ("07_lsgan", "ls_discriminator_loss", "mse_loss"): """
        def ls_discriminator_loss(real_scores, fake_scores):
            return 0.5 * F.mse_loss(real_scores, torch.ones_like(real_scores)) + 0.5 * F.mse_loss(
                fake_scores, torch.zeros_like(fake_scores)
            )
    """,
    ("07_lsgan", "ls_discriminator_loss", "pow_mean"): """
        def ls_discriminator_loss(real_scores, fake_scores):
            return ((real_scores - 1).pow(2).mean() + fake_scores.pow(2).mean()) / 2
    """,
    ("07_lsgan", "ls_generator_loss", "mse_loss"): """
        def ls_generator_loss(fake_scores):
            return 0.5 * F.mse_loss(fake_scores, torch.ones_like(fake_scores))
    """,
    ("07_lsgan", "ls_generator_loss", "explicit_target"): """
        def ls_generator_loss(fake_scores):
            target = torch.ones(fake_scores.shape, dtype=fake_scores.dtype)
            return nn.MSELoss()(fake_scores, target) * 0.5
    """,
}


def _step_source(
    detach=".detach()",
    retain="",
    clear_D="opt_D.zero_grad()",
    clear_G="opt_G.zero_grad()",
    clear_G_first="pass",
    fake_for_G="x_fake",
) -> str:
    """A gan_train_step with one part changed: the classic mistakes of the training step."""
    return f"""
        def gan_train_step(G, D, real, opt_G, opt_D, noise_dim):
            {clear_G_first}
            x_fake = G(sample_noise(real.shape[0], noise_dim))
            loss_D = discriminator_loss(D(real), D(x_fake{detach}))
            {clear_D}
            loss_D.backward({retain})
            opt_D.step()
            loss_G = generator_loss(D({fake_for_G}))
            {clear_G}
            loss_G.backward()
            opt_G.step()
            return {{"loss_D": loss_D.item(), "loss_G": loss_G.item()}}
    """


# ------------------------------------------------------------------------------ mistakes
MISTAKES = {  # (notebook, exercise, id): (source, words of the mistake's name in the feedback)
    ("06_gan", "sample_noise", "uniform"): (
        """
        def sample_noise(batch_size, noise_dim):
            return torch.rand(batch_size, noise_dim)
        """,
        "uniform noise in [0, 1)",
    ),
    ("06_gan", "discriminator_loss", "labels_swapped"): (
        """
        def discriminator_loss(real_logits, fake_logits):
            bce = F.binary_cross_entropy_with_logits
            return bce(real_logits, torch.zeros_like(real_logits)) + bce(
                fake_logits, torch.ones_like(fake_logits)
            )
        """,
        "labels swapped",
    ),
    ("06_gan", "discriminator_loss", "sigmoid_first"): (
        """
        def discriminator_loss(real_logits, fake_logits):
            bce = F.binary_cross_entropy_with_logits
            real, fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
            return bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
        """,
        "a sigmoid before BCE-with-logits",
    ),
    ("06_gan", "discriminator_loss", "summed"): (
        """
        def discriminator_loss(real_logits, fake_logits):
            return F.softplus(-real_logits).sum() + F.softplus(fake_logits).sum()
        """,
        "summed over the batch",
    ),
    ("06_gan", "discriminator_loss", "one_mean"): (
        """
        def discriminator_loss(real_logits, fake_logits):
            logits = torch.cat([real_logits, fake_logits])
            labels = torch.cat([torch.ones_like(real_logits), torch.zeros_like(fake_logits)])
            return F.binary_cross_entropy_with_logits(logits, labels)
        """,
        "one mean over the real and fake logits together",
    ),
    ("06_gan", "generator_loss", "saturating"): (
        """
        def generator_loss(fake_logits):
            return torch.log(1 - torch.sigmoid(fake_logits)).mean()
        """,
        "the saturating loss",
    ),
    ("06_gan", "generator_loss", "labels_swapped"): (
        """
        def generator_loss(fake_logits):
            return F.softplus(fake_logits).mean()
        """,
        "labels swapped",
    ),
    ("06_gan", "generator_loss", "summed"): (
        """
        def generator_loss(fake_logits):
            return F.binary_cross_entropy_with_logits(
                fake_logits, torch.ones_like(fake_logits), reduction="sum"
            )
        """,
        "summed over the batch",
    ),
    ("06_gan", "make_optimizers", "one_optimiser"): (
        """
        def make_optimizers(G, D, lr=2e-4, betas=(0.5, 0.999), step_size=5, gamma=0.5):
            opt = torch.optim.Adam(list(G.parameters()) + list(D.parameters()), lr=lr, betas=betas)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
            return opt, opt, sched, sched
        """,
        "one optimiser for both networks",
    ),
    ("06_gan", "make_optimizers", "unattached_schedulers"): (
        """
        def make_optimizers(G, D, lr=2e-4, betas=(0.5, 0.999), step_size=5, gamma=0.5):
            opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
            opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
            sched_G = torch.optim.lr_scheduler.StepLR(
                torch.optim.Adam(G.parameters(), lr=lr, betas=betas), step_size, gamma
            )
            sched_D = torch.optim.lr_scheduler.StepLR(
                torch.optim.Adam(D.parameters(), lr=lr, betas=betas), step_size, gamma
            )
            return opt_G, opt_D, sched_G, sched_D
        """,
        "schedulers are attached to other optimisers",
    ),
    ("06_gan", "gan_train_step", "no_detach"): (
        _step_source(detach="", retain="retain_graph=True"),
        "not detached in the D step",
    ),
    ("06_gan", "gan_train_step", "no_detach_polluted"): (
        _step_source(
            detach="", retain="retain_graph=True", clear_G_first="opt_G.zero_grad()", clear_G="pass"
        ),
        "pollutes G's update",
    ),
    ("06_gan", "gan_train_step", "D_grads_not_cleared"): (
        _step_source(clear_D="pass"),
        "D's gradients are not cleared",
    ),
    ("06_gan", "gan_train_step", "G_grads_not_cleared"): (
        _step_source(clear_G="pass"),
        "G's gradients are not cleared",
    ),
    ("06_gan", "gan_train_step", "fresh_noise"): (
        _step_source(fake_for_G="G(sample_noise(real.shape[0], noise_dim))"),
        "fresh noise for the G step",
    ),
    ("06_gan", "Generator", "tanh"): (
        """
        class Generator(nn.Module):
            def __init__(self, noise_dim=100):
                super().__init__()
                self.fc = nn.Linear(noise_dim, 128 * 7 * 7)
                self.up1 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
                self.up2 = nn.ConvTranspose2d(64, 1, 4, 2, 1)

            def forward(self, z):
                h = torch.relu(self.fc(z)).view(-1, 128, 7, 7)
                return torch.tanh(self.up2(torch.relu(self.up1(h))))
        """,
        "tanh output",
    ),
    ("06_gan", "Generator", "wrong_maps"): (
        """
        class Generator(nn.Module):
            def __init__(self, noise_dim=100):
                super().__init__()
                self.fc = nn.Linear(noise_dim, 64 * 7 * 7)
                self.up1 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
                self.up2 = nn.ConvTranspose2d(32, 1, 4, 2, 1)

            def forward(self, z):
                h = torch.relu(self.fc(z)).view(-1, 64, 7, 7)
                return torch.sigmoid(self.up2(torch.relu(self.up1(h))))
        """,
        "(B, 128, 7, 7) feature maps",
    ),
    ("06_gan", "Discriminator", "sigmoid"): (
        """
        class Discriminator(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(
                    nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2),
                    nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.2),
                    nn.Flatten(), nn.Linear(128 * 7 * 7, 1), nn.Sigmoid(),
                )

            def forward(self, x):
                return self.net(x)
        """,
        "a sigmoid at the end",
    ),
    ("07_lsgan", "ls_discriminator_loss", "no_half"): (
        """
        def ls_discriminator_loss(real_scores, fake_scores):
            return ((real_scores - 1) ** 2).mean() + (fake_scores**2).mean()
        """,
        "0.5 factors are missing",
    ),
    ("07_lsgan", "ls_discriminator_loss", "targets_swapped"): (
        """
        def ls_discriminator_loss(real_scores, fake_scores):
            return 0.5 * (real_scores**2).mean() + 0.5 * ((fake_scores - 1) ** 2).mean()
        """,
        "targets swapped",
    ),
    ("07_lsgan", "ls_discriminator_loss", "bce_left_in"): (
        """
        def ls_discriminator_loss(real_scores, fake_scores):
            bce = F.binary_cross_entropy_with_logits
            return bce(real_scores, torch.ones_like(real_scores)) + bce(
                fake_scores, torch.zeros_like(fake_scores)
            )
        """,
        "binary cross-entropy",
    ),
    ("07_lsgan", "ls_generator_loss", "no_half"): (
        """
        def ls_generator_loss(fake_scores):
            return F.mse_loss(fake_scores, torch.ones_like(fake_scores))
        """,
        "0.5 factor is missing",
    ),
    ("07_lsgan", "ls_generator_loss", "target_zero"): (
        """
        def ls_generator_loss(fake_scores):
            return 0.5 * (fake_scores**2).mean()
        """,
        "target",
    ),
    ("07_lsgan", "ls_generator_loss", "bce_left_in"): (
        """
        def ls_generator_loss(fake_scores):
            return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
        """,
        "binary cross-entropy",
    ),
}


CORRECT = {k: v for k, v in CORRECT.items() if k[0] in JUDGES}
MISTAKES = {k: v for k, v in MISTAKES.items() if k[0] in JUDGES}


def _exercises() -> list[tuple[str, str]]:
    """Exercises with a reference definition (07's lsgan_training probes the notebook's training)."""
    return [(nb, ex) for nb, judge in JUDGES.items() for ex in judge.exercises]


@pytest.mark.parametrize("notebook, exercise", _exercises(), ids=lambda v: v)
def test_reference_passes_its_own_hidden_and_visible_tests(
    judge, reference_records, notebook, exercise
):
    records = reference_records(notebook, exercise)
    assert records and all("error" not in r.meta for r in records.values())
    ref = getattr(JUDGES[notebook].ref, exercise)
    outcome = judge(notebook, exercise, ref)
    assert not outcome.failures, outcome.failures
    assert outcome.visible_error == ""


@pytest.mark.parametrize("key", list(CORRECT), ids=["-".join(k[1:]) for k in CORRECT])
def test_correct_alternative_passes(judge, key):
    notebook, exercise, _ = key
    fn = define(CORRECT[key], exercise)
    outcome = judge(notebook, exercise, fn)
    assert not outcome.failures, "\n\n".join(outcome.failures.values())
    assert outcome.source_problem == ""
    assert outcome.visible_error == ""


@pytest.mark.parametrize("key", list(MISTAKES), ids=["-".join(k[1:]) for k in MISTAKES])
def test_classic_mistake_fails_and_is_named(judge, key):
    notebook, exercise, _ = key
    source, label = MISTAKES[key]
    outcome = judge(notebook, exercise, define(source, exercise))
    assert outcome.failures, f"{key} passed the hidden tests"
    named = [m for m in outcome.failures.values() if label in m]
    assert named, "\n\n".join(outcome.failures.values())
    for message in outcome.failures.values():
        assert_feedback(message)


def test_naive_log_of_sigmoid_fails_on_confident_logits(judge):
    fn = define(
        """
        def discriminator_loss(real_logits, fake_logits):
            return -torch.log(torch.sigmoid(real_logits)).mean() - torch.log(
                1 - torch.sigmoid(fake_logits)
            ).mean()
        """,
        "discriminator_loss",
    )
    outcome = judge("06_gan", "discriminator_loss", fn)
    assert list(outcome.failures) == ["discriminator_loss#0#2"], outcome.failures
    assert "with-logits" in outcome.visible_error


def test_gan_train_step_is_graded_on_the_reference_losses(reference_records):
    """given=(...): a wrong loss or noise of the student's costs once, not again in the step."""
    records = reference_records("06_gan", "gan_train_step")
    for record in records.values():
        assert record.meta["given"] == ["discriminator_loss", "generator_loss", "sample_noise"]
