"""A variational autoencoder on the digits, as a plain training loop
==================================================================

Not every model is ``Trainer.fit(X, y)``. A variational autoencoder (Kingma and Welling, 2014) has
two networks, a random draw in the middle and a loss of two parts, one of them computed by hand.
minidl's layers are enough for it: every layer and model has ``forward`` and ``backward``, and
``model.backward(g)`` returns the gradient with respect to the model's input, which is what lets
a gradient travel from the decoder, through a step written in numpy, into the encoder.

The encoder maps an image :math:`x` (64 pixels in [0, 1]) to the mean :math:`\\mu` and the log of
the variance :math:`\\log\\sigma^2` of a Gaussian over a small latent space; a code is drawn from
it, :math:`z = \\mu + \\sigma\\,\\varepsilon` with :math:`\\varepsilon \\sim N(0, I)` (the
*reparameterisation*: the draw is the input :math:`\\varepsilon`, so :math:`z` is a plain function
of :math:`\\mu` and :math:`\\sigma`, and gradients flow through it); the decoder maps :math:`z` to
64 pixel logits. The loss per image is the reconstruction error (binary cross-entropy of the pixels)
plus the KL divergence of :math:`N(\\mu, \\sigma^2)` from the prior :math:`N(0, I)`. After training,
decoding codes drawn from the prior gives new digits.

Run from any folder:  python examples/plot_vae_digits.py [--epochs 60]  (about 25 s on one core)
"""
import argparse

import matplotlib.pyplot as plt
import numpy as np

import minidl as mdl
from minidl import functional as F
from minidl import layers

parser = argparse.ArgumentParser(description="Train a VAE on the 8x8 digits; plot samples and losses.")
parser.add_argument("--epochs", type=int, default=60)
args = parser.parse_args()

(X_train, _), (X_test, _) = mdl.data.load_digits(test_size=0.2, seed=0)
X_train, X_test = X_train.reshape(-1, 64), X_test.reshape(-1, 64)  # 64 pixels in [0, 1], float32
LATENT = 4
rng = np.random.default_rng(0)
encoder = mdl.Sequential(layers.Dense(64, 128, rng=rng), layers.ReLU(), layers.Dense(128, 2 * LATENT, rng=rng))
decoder = mdl.Sequential(layers.Dense(LATENT, 128, rng=rng), layers.ReLU(), layers.Dense(128, 64, rng=rng))
optimizer = mdl.optim.Adam(encoder.parameters() + decoder.parameters(), lr=2e-3)
reconstruction = mdl.losses.BCEWithLogitsLoss(reduction="sum")  # summed over the pixels...


def step(x, eps, train=True):
    """One batch: the two parts of the loss per image; with ``train``, their gradients in ``.grad``."""
    n = len(x)
    h = encoder(x)
    mu, logvar = h[:, :LATENT], h[:, LATENT:]
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * eps  # the reparameterisation
    rec = reconstruction(decoder(z), x) / n  # ...and divided by the batch here: a mean per image
    kl = 0.5 * np.sum(mu**2 + sigma**2 - 1.0 - logvar) / n  # KL(N(mu, sigma^2) || N(0, I)), closed form
    if train:
        # The decoder's backward returns dL/dz. Through z = mu + sigma * eps, with d sigma / d logvar
        # = sigma / 2: dL/dmu = dL/dz and dL/dlogvar = dL/dz * eps * sigma / 2. The KL term's own
        # gradient, from its formula: d/dmu = mu / n, d/dlogvar = (sigma^2 - 1) / (2 n).
        grad_z = decoder.backward(reconstruction.backward(1.0 / n))
        grad_mu = grad_z + mu / n
        grad_logvar = grad_z * eps * sigma / 2 + (sigma**2 - 1.0) / (2 * n)
        encoder.backward(np.concatenate([grad_mu, grad_logvar], axis=1), input_grad=False)
    return rec, kl


# %%
# The training loop: shuffle, then per batch zero the gradients, forward and backward, step.
# ``optimizer.zero_grad()`` matters: a layer's backward *adds* into ``.grad``, as torch's does.
history = {"reconstruction": [], "KL": [], "test loss": []}
for epoch in range(args.epochs):
    order = rng.permutation(len(X_train))
    totals = np.zeros(2)
    for start in range(0, len(order), 64):
        x = X_train[order[start:start + 64]]
        optimizer.zero_grad()
        rec, kl = step(x, rng.standard_normal((len(x), LATENT), dtype=np.float32))  # float32, as the layers
        optimizer.step()
        totals += np.array([rec, kl]) * len(x)
    rec, kl = totals / len(X_train)
    for model in (encoder, decoder):
        model.eval()  # no backward: the layers keep nothing for one
    test_rec, test_kl = step(X_test, rng.standard_normal((len(X_test), LATENT), dtype=np.float32), train=False)
    for model in (encoder, decoder):
        model.train()
    for key, value in zip(history, (rec, kl, test_rec + test_kl)):
        history[key].append(value)
    if epoch % 10 == 0 or epoch == args.epochs - 1:
        print(f"epoch {epoch + 1:3d}: reconstruction {rec:6.2f} + KL {kl:5.2f} nats per image; "
              f"test loss {test_rec + test_kl:6.2f}")

# %%
# Left: the loss per image, its two parts, and the test loss. Right: new digits, decoded from
# codes drawn from the prior :math:`N(0, I)` (the pixels' probabilities, the sigmoid of the
# decoder's logits), above a row of test images and a row of their reconstructions.
for model in (encoder, decoder):
    model.eval()
samples = F.sigmoid(decoder(rng.standard_normal((40, LATENT), dtype=np.float32)))
recon = F.sigmoid(decoder(encoder(X_test[:10])[:, :LATENT]))  # decoded from the mean code of each image
fig, (ax_loss, ax_img) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
epochs = np.arange(1, args.epochs + 1)
for key, style in zip(history, ("-", "-", "--")):
    ax_loss.plot(epochs, history[key], style, label=key)
ax_loss.set(xlabel="epoch", ylabel="nats per image", yscale="log", title="loss = reconstruction + KL")
ax_loss.legend()


def tiles(images):
    """Rows of 10 images (64 pixels each) as one picture, a blank pixel around each."""
    return np.block([[np.pad(im, 1) for im in row] for row in images.reshape(-1, 10, 8, 8)])


picture = np.concatenate([tiles(samples), np.zeros((4, 100)), tiles(np.concatenate([X_test[:10], recon]))])
ax_img.imshow(picture, cmap="gray_r")
ax_img.set(title="new digits (4 rows); test digits and their reconstructions", xticks=[], yticks=[])
fig.tight_layout()
if "__file__" in globals():  # run as a script: the figure as a PNG next to it (sphinx-gallery shows it itself)
    mdl.plot.save_figures(__file__)
