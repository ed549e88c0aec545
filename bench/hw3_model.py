# The HW3 classifier in PyTorch, as trainguard builds it in C++ (trainer/model/hw3_net.cc), for
# the Python benchmark peers: five blocks Conv3x3-BatchNorm-ReLU-MaxPool2 with 64-128-256-512-512
# channels scaled by a width multiplier, then FC 1024-512-num_classes.
import math

import torch.nn as nn


def scaled(c, w):
    # Round half away from zero (like C++ std::round), never below 1 channel.
    return max(1, int(math.floor(c * w + 0.5)))


class HW3Classifier(nn.Module):
    def __init__(self, width, num_classes, image_size, in_channels):
        super().__init__()
        chans = [scaled(c, width) for c in (64, 128, 256, 512, 512)]
        layers = []
        prev = in_channels
        for c in chans:  # 5 x (conv3x3 -> BN -> ReLU -> maxpool 2x2)
            layers += [
                nn.Conv2d(prev, c, kernel_size=3, stride=1, padding=1),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=2, stride=2),
            ]
            prev = c
        self.features = nn.Sequential(*layers)
        spatial = image_size // 32                     # 5 halvings
        hidden1, hidden2 = scaled(1024, width), scaled(512, width)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(prev * spatial * spatial, hidden1),
            nn.ReLU(inplace=True),
            nn.Linear(hidden1, hidden2),
            nn.ReLU(inplace=True),
            nn.Linear(hidden2, num_classes),
        )
        self.channels = chans + [hidden1, hidden2]

    def forward(self, x):
        return self.classifier(self.features(x))
