"""A convolutional autoencoder on digits: ConvTranspose2D and Upsample
====================================================================

An autoencoder learns to copy its input through a bottleneck: the encoder (convolutions and max
pooling) squeezes each 8x8 digit into 4 channels of 2x2, 16 numbers; the decoder has to paint the
64 pixels back from them. It upsamples twice, once with a learned ``ConvTranspose2D`` (stride 2:
each code pixel stamps a 2x2 kernel) and once with a fixed ``Upsample`` followed by a ``Conv2D``.
The loss is the mean squared error between the reconstruction and the input itself: no labels.

The same recipe -- the same initial weights (converted with ``mdl.interop.to_torch``), the same
batches, Adam with the same settings -- is trained in PyTorch when it is installed, and the two
losses are printed side by side.

Run from any folder:  python examples/plot_autoencoder.py  (a few seconds on one core)
"""

# %%
# The data and the model
# ----------------------
import matplotlib.pyplot as plt
import numpy as np

import minidl as mdl
from minidl import layers

(X_train, _), (X_test, _) = mdl.data.load_digits(test_size=0.2, seed=0)
EPOCHS, BATCH, LR = 10, 32, 0.01

rng = np.random.default_rng(0)
model = mdl.Sequential(
    layers.Conv2D(1, 16, 3, padding=1, rng=rng), layers.ReLU(), layers.MaxPool2D(2),  # 16 x 4 x 4
    layers.Conv2D(16, 4, 3, padding=1, rng=rng), layers.ReLU(), layers.MaxPool2D(2),  # code: 4 x 2 x 2
    layers.ConvTranspose2D(4, 16, 2, stride=2, rng=rng), layers.ReLU(),  # 16 x 4 x 4
    layers.Upsample(scale_factor=2, mode="bilinear"), layers.Conv2D(16, 1, 3, padding=1, rng=rng),  # 1 x 8 x 8
    layers.Sigmoid(),  # pixels in [0, 1], as the inputs
)
print(model.summary((1, 8, 8)))
torch_model = None
try:
    import torch

    torch.set_num_threads(1)  # one core, as minidl here (threads only slow such small batches down)
    torch_model = mdl.interop.to_torch(model).train()  # the same initial weights, before training
except ImportError:
    print("torch is not installed: the torch side of the comparison is skipped")

# %%
# Training: a plain loop
# ----------------------
# Each step: forward, the loss against the input itself, backward through the loss and the
# model, one Adam step. The batches are drawn once, so that torch sees the same ones.
loss_fn = mdl.losses.MSE()
optimizer = mdl.optim.Adam(model.parameters(), lr=LR)
order = [np.random.default_rng(epoch).permutation(len(X_train)) for epoch in range(EPOCHS)]
batches = [[idx[i:i + BATCH] for i in range(0, len(idx), BATCH)] for idx in order]
history = {"loss": [], "val_loss": []}
for epoch_batches in batches:
    model.train()
    total = 0.0
    for idx in epoch_batches:
        x = X_train[idx]
        total += loss_fn(model(x), x) * len(idx)
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
    history["loss"].append(total / len(X_train))
    history["val_loss"].append(loss_fn(model.eval()(X_test), X_test))

if torch_model is not None:
    t_opt = torch.optim.Adam(torch_model.parameters(), lr=LR)
    t_loss = []
    for epoch_batches in batches:
        total = 0.0
        for idx in epoch_batches:
            x = torch.from_numpy(X_train[idx])
            loss = torch.nn.functional.mse_loss(torch_model(x), x)
            t_opt.zero_grad()
            loss.backward()
            t_opt.step()
            total += loss.item() * len(idx)
        t_loss.append(total / len(X_train))
    with torch.no_grad():
        t_val = torch.nn.functional.mse_loss(torch_model.eval()(torch.from_numpy(X_test)),
                                             torch.from_numpy(X_test)).item()

print("epoch  train MSE (minidl)" + ("  train MSE (torch)" if torch_model is not None else ""))
for epoch in range(EPOCHS):
    print(f"{epoch + 1:5d}  {history['loss'][epoch]:18.5f}"
          + (f"  {t_loss[epoch]:17.5f}" if torch_model is not None else ""))
baseline = float(np.mean((X_test - X_train.mean(axis=0)) ** 2))  # painting the mean digit every time
print(f"test MSE of the mean training image: {baseline:.5f}")
print(f"test MSE minidl: {history['val_loss'][-1]:.5f}"
      + (f"   torch: {t_val:.5f}" if torch_model is not None else "   torch: skipped (not installed)"))

# %%
# Reconstructions, filters and the training curve
# -----------------------------------------------
# Top row: test digits; bottom row: what the autoencoder paints back from their 16-number codes.
# Then the first layer's 16 filters (``mdl.plot.filters``) and the learning curves.
recon = model.eval()(X_test[:10])
fig_recon, axes = plt.subplots(2, 10, figsize=(8, 1.9))
for k in range(10):
    for row, image in ((0, X_test[k, 0]), (1, recon[k, 0])):
        axes[row, k].imshow(image, cmap="gray_r", vmin=0, vmax=1)
        axes[row, k].axis("off")
axes[0, 0].set_title("input", loc="left", fontsize="small")
axes[1, 0].set_title("reconstruction", loc="left", fontsize="small")

fig_filters = mdl.plot.filters(model)

fig_curve, ax = plt.subplots(figsize=(5, 3))
mdl.plot.learning_curves(history, metrics=["loss"], ax=ax)
if torch_model is not None:
    ax.plot(range(1, EPOCHS + 1), t_loss, "k:", label="train (torch)")
    ax.legend()
ax.set_ylabel("MSE")
fig_curve.tight_layout()

if "__file__" in globals():  # run as a script: the figures as PNGs next to it (sphinx-gallery shows them itself)
    mdl.plot.save_figures(__file__)
