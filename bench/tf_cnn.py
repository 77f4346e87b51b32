"""The TensorFlow MNIST CNN tutorial (shared/reference/tf-mnist-cnn-tutorial.txt), timed.

The network, loss, optimizer and training step are the tutorial's code; the data comes from the
repository's vendored MNIST instead of a download, and the loop is timed. Prints one JSON line.
TF_ENABLE_ONEDNN_OPTS=1 in the environment switches on TensorFlow's oneDNN kernels.

    python bench/tf_cnn.py --steps 500 --batch 50
"""
import argparse
import json
import os
import time

T0 = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

import mnist_data  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=500)
p.add_argument("--batch", type=int, default=50)
p.add_argument("--warmup", type=int, default=20)
p.add_argument("--eval-batch", type=int, default=1000)
p.add_argument("--net", help="another network and optimizer, as bench/netspec.py writes them")
args = p.parse_args()

x_train, y_train, x_test, y_test = mnist_data.load()
y_train, y_test = tf.one_hot(y_train, depth=10), tf.one_hot(y_test, depth=10)
train_data = tf.data.Dataset.from_tensor_slices((x_train, y_train))
train_data = train_data.repeat().shuffle(60000).batch(args.batch)
train_data_iter = iter(train_data)


class CNN(tf.keras.Model):
    def __init__(self):
        super(CNN, self).__init__()
        self.conv_layer_1 = tf.keras.layers.Conv2D(filters=32, kernel_size=5, strides=1, padding="same", activation="relu")
        self.pool_layer_1 = tf.keras.layers.MaxPool2D(pool_size=(2, 2), strides=2)
        self.conv_layer_2 = tf.keras.layers.Conv2D(filters=64, kernel_size=5, strides=1, padding="same", activation="relu")
        self.pool_layer_2 = tf.keras.layers.MaxPool2D(pool_size=(2, 2), strides=2)
        self.flatten_layer = tf.keras.layers.Flatten()
        self.fc_layer_1 = tf.keras.layers.Dense(1024, activation="relu")
        self.output_layer = tf.keras.layers.Dense(10, activation=None)

    def call(self, x):
        x_image = tf.reshape(x, [-1, 28, 28, 1])
        h_conv1 = self.conv_layer_1(x_image)
        h_pool1 = self.pool_layer_1(h_conv1)
        h_conv2 = self.conv_layer_2(h_pool1)
        h_pool2 = self.pool_layer_2(h_conv2)
        h_pool2_flat = self.flatten_layer(h_pool2)
        h_fc1 = self.fc_layer_1(h_pool2_flat)
        logits = self.output_layer(h_fc1)
        y_pred = tf.nn.softmax(logits)
        return y_pred, logits


@tf.function
def cross_entropy_loss(logits, y):
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=logits, labels=y))


class Generic(tf.keras.Model):
    """A network of `bench/netspec.py`, in the tutorial's style: conv blocks (conv with ReLU,
    2x2 max-pool if `pool`), then dense ReLU layers and 10 logits."""

    def __init__(self, m):
        super().__init__()
        self.blocks = []
        for f, k, pad, pool in zip(m.get("conv", []), m.get("kernel", []), m.get("padding", []),
                                   m.get("pool", [])):
            self.blocks.append(tf.keras.layers.Conv2D(filters=f, kernel_size=k, strides=1, padding=pad,
                                                      activation="relu"))
            if pool:
                self.blocks.append(tf.keras.layers.MaxPool2D(pool_size=(2, 2), strides=2))
        self.flatten_layer = tf.keras.layers.Flatten()
        self.dense = [tf.keras.layers.Dense(h, activation="relu") for h in m["hidden"]]
        self.output_layer = tf.keras.layers.Dense(10, activation=None)

    def call(self, x):
        x = tf.reshape(x, [-1, 28, 28, 1]) if self.blocks else x
        for layer in self.blocks:
            x = layer(x)
        x = self.flatten_layer(x)
        for layer in self.dense:
            x = layer(x)
        logits = self.output_layer(x)
        return tf.nn.softmax(logits), logits


if args.net:
    import netspec  # noqa: E402

    net, optim = netspec.parse(args.net)
    if optim["kind"] == "sgd":
        optimizer = tf.optimizers.SGD(optim["lr"], momentum=optim.get("momentum", 0.0))
    else:
        optimizer = tf.optimizers.Adam(optim["lr"], epsilon=optim.get("eps", 1e-8))
else:
    optimizer = tf.optimizers.Adam(1e-4)


@tf.function
def train_step(model, x, y):
    with tf.GradientTape() as tape:
        y_pred, logits = model(x)
        loss = cross_entropy_loss(logits, y)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))


@tf.function
def predict(model, x):
    return model(x)[1]


CNN_model = Generic(net) if args.net else CNN()
startup_s = time.perf_counter() - T0
for i in range(args.warmup + args.steps):
    if i == args.warmup:
        t = time.perf_counter()
    batch_x, batch_y = next(train_data_iter)
    train_step(CNN_model, batch_x, batch_y)
train_s = time.perf_counter() - t

def evaluate():
    correct = 0
    for s in range(0, len(x_test), args.eval_batch):
        logits = predict(CNN_model, x_test[s:s + args.eval_batch])
        correct += int(tf.reduce_sum(tf.cast(tf.argmax(logits, 1) == tf.argmax(y_test[s:s + args.eval_batch], 1), tf.int32)))
    return correct / len(x_test)

evaluate()  # traces predict
t = time.perf_counter()
accuracy = evaluate()
eval_s = time.perf_counter() - t
print(json.dumps({
    "framework": "tensorflow" + ("+onednn" if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1" else ""),
    "version": tf.__version__,
    "batch": args.batch,
    "steps": args.steps,
    "ms_per_step": 1000 * train_s / args.steps,
    "eval_images_per_s": len(x_test) / eval_s,
    "startup_s": startup_s,
    "peak_rss_mb": mnist_data.peak_rss_mb(),
    "test_accuracy": accuracy,
}))
