"""The field-style networks `make_field_models.py` exports: each family's exact output layout
over one shared hand-set feature stack (see that script's docstring)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

__all__ = [
    "CLASSES",
    "CLASSIFIER_LABELS",
    "Classifier",
    "EfficientNms",
    "EndToEnd",
    "TfSsd",
    "YoloV5",
    "YoloV8",
]

CLASSES = ("red", "green", "blue")
CLASSIFIER_LABELS = (*CLASSES, "grey")
STRIDES = (8, 16, 32)
BOXES = (32.0, 64.0, 112.0)  # box side per level, before the random size factor
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _gaussian(stride: int) -> torch.Tensor:
    """A 3-stride-wide Gaussian window (sigma = stride), summing to 1."""
    offsets = torch.arange(3 * stride, dtype=torch.float64) - (3 * stride - 1) / 2
    weights = torch.exp(-0.5 * (offsets / stride) ** 2)
    return (weights / weights.sum()).float()


class Levels(nn.Module):
    """Unit-scale NCHW RGB → per level (boxes cx, cy, w, h in input pixels [N, 4, A], logits [N, C, A])."""

    def __init__(self) -> None:
        super().__init__()
        self.purity = nn.Conv2d(3, 3, 1)
        self.across = nn.ModuleList()
        self.down = nn.ModuleList()
        self.head = nn.ModuleList()
        self.regress = nn.ModuleList()
        with torch.no_grad():
            self.purity.weight.copy_((torch.eye(3) * 1.5 - 0.5).reshape(3, 3, 1, 1))  # c - (others)/2
            self.purity.bias.zero_()
            for level, stride in enumerate(STRIDES):
                across = nn.Conv2d(3, 3, (1, 3 * stride), (1, stride), (0, stride), groups=3, bias=False)
                down = nn.Conv2d(3, 3, (3 * stride, 1), (stride, 1), (stride, 0), groups=3, bias=False)
                across.weight.copy_(_gaussian(stride).reshape(1, 1, 1, -1).repeat(3, 1, 1, 1))
                down.weight.copy_(_gaussian(stride).reshape(1, 1, -1, 1).repeat(3, 1, 1, 1))
                head = nn.Conv2d(6, len(CLASSES), 1)
                head.weight.mul_(0.05)  # the random part: small, so the hand-set part decides
                head.weight[level, level] += 10.0  # blob strength
                head.weight[level, 3 + level] += 2000.0  # below its 3x3 neighbourhood's peak: off
                head.bias.copy_(torch.full((len(CLASSES),), -14.0))
                head.bias[level] = -2.0
                self.across.append(across)
                self.down.append(down)
                self.head.append(head)
                self.regress.append(nn.Conv2d(3, 4, 1))  # random: per-anchor offsets and sizes

    def forward(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        purity = self.purity(images)
        levels = []
        for level, stride in enumerate(STRIDES):
            blurred = self.down[level](self.across[level](purity))
            ranked = blurred + _ramp(blurred)
            peak = ranked - functional.max_pool2d(ranked, 3, 1, 1)
            logits = self.head[level](torch.cat([blurred, peak], 1)).flatten(2)
            levels.append((self._boxes(blurred, level, stride), logits))
        return levels

    def _boxes(self, blurred: torch.Tensor, level: int, stride: int) -> torch.Tensor:
        rows, cols = blurred.shape[2], blurred.shape[3]
        ys = (torch.arange(rows, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(cols, dtype=torch.float32) + 0.5) * stride
        grid_y = ys.reshape(-1, 1).expand(rows, cols).reshape(1, -1)
        grid_x = xs.reshape(1, -1).expand(rows, cols).reshape(1, -1)
        shift = torch.tanh(self.regress[level](blurred * 4)).flatten(2)
        cx = grid_x + 0.25 * stride * shift[:, 0]
        cy = grid_y + 0.25 * stride * shift[:, 1]
        w = BOXES[level] * torch.exp(0.15 * shift[:, 2])
        h = BOXES[level] * torch.exp(0.15 * shift[:, 3])
        return torch.stack([cx, cy, w, h], 1)


def _ramp(features: torch.Tensor) -> torch.Tensor:
    """0.03 more per cell to the right, 0.02 per cell down: a blob whose peak falls between two
    cells still has one local maximum, so exactly one anchor fires per blob."""
    rows, cols = features.shape[2], features.shape[3]
    across = torch.arange(cols, dtype=torch.float32).reshape(1, -1) * 0.03
    down = torch.arange(rows, dtype=torch.float32).reshape(-1, 1) * 0.02
    return (across + down).reshape(1, 1, rows, cols)


def _anchors(levels: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """All levels' (boxes [N, 4, A], logits [N, C, A]), level by level as Ultralytics orders them."""
    return torch.cat([b for b, _ in levels], 2), torch.cat([s for _, s in levels], 2)


class YoloV8(nn.Module):
    """Ultralytics YOLOv8/YOLO11 detect head: [N, 4 + C, A], cx cy w h then sigmoid class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.levels = Levels()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, logits = _anchors(self.levels(images))
        return torch.cat([boxes, logits.sigmoid()], 1)


class YoloV5(YoloV8):
    """YOLOv5 export: [N, A, 5 + C], cx cy w h, objectness, class scores (all probabilities)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, logits = _anchors(self.levels(images))
        objectness = logits.max(1, keepdim=True).values.sigmoid()
        return torch.cat([boxes, objectness, logits.sigmoid()], 1).transpose(1, 2)


def _top(images: torch.Tensor, levels: Levels, keep: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `keep` best anchors, best first: corner boxes [N, K, 4] (x1 y1 x2 y2), scores, classes."""
    boxes, logits = _anchors(levels(images))
    scores, classes = logits.sigmoid().max(1)
    best, index = scores.topk(keep, dim=1)
    centre = boxes.transpose(1, 2).gather(1, index.unsqueeze(2).expand(-1, -1, 4))
    corners = torch.cat([centre[..., :2] - centre[..., 2:] / 2, centre[..., :2] + centre[..., 2:] / 2], 2)
    return corners, best, classes.gather(1, index)


class EndToEnd(YoloV8):
    """NMS-free export (YOLOv10/YOLO26 `end2end`): [N, K, 6] of x1 y1 x2 y2 score class."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        corners, scores, classes = _top(images, self.levels, 20)
        return torch.cat([corners, scores.unsqueeze(2), classes.unsqueeze(2).float()], 2)


class EfficientNms(YoloV8):
    """TensorRT EfficientNMS-style outputs: num_dets [N, 1] int32, det_boxes [N, K, 4] x1 y1 x2 y2,
    det_scores [N, K], det_classes [N, K] int32; rows past num_dets are zeros."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        corners, scores, classes = _top(images, self.levels, 16)
        valid = scores > 0.25
        count = valid.sum(1, keepdim=True).to(torch.int32)
        mask = valid.float()
        return count, corners * mask.unsqueeze(2), scores * mask, (classes * valid).to(torch.int32)


class TfSsd(YoloV8):
    """TF Object Detection API SSD as tf2onnx writes it: uint8 NHWC in; detection_boxes [N, K, 4]
    normalised ymin xmin ymax xmax, detection_scores, detection_classes (float, 1-based: 0 is
    background), num_detections [N] float; rows past num_detections are zeros."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        unit = images.permute(0, 3, 1, 2).float() / 255
        corners, scores, classes = _top(unit, self.levels, 10)
        valid = (scores > 0.3).float()
        height, width = images.shape[1], images.shape[2]
        x1, y1, x2, y2 = corners.unbind(2)
        boxes = torch.stack([y1 / height, x1 / width, y2 / height, x2 / width], 2).clamp(0, 1)
        return (
            boxes * valid.unsqueeze(2),
            scores * valid,
            (classes.float() + 1) * valid,
            valid.sum(1),
        )


class Classifier(nn.Module):
    """torchvision-style: ImageNet-normalised NCHW in, logits [N, classes] out (or, `probabilities`,
    a softmax as Keras models end with, over NHWC unit-scale input)."""

    def __init__(self, probabilities: bool = False) -> None:
        super().__init__()
        self.probabilities = probabilities
        self.purity = nn.Conv2d(3, 3, 1)
        self.fc = nn.Linear(3, len(CLASSIFIER_LABELS))
        with torch.no_grad():
            self.purity.weight.copy_((torch.eye(3) * 1.5 - 0.5).reshape(3, 3, 1, 1))
            self.purity.bias.zero_()
            self.fc.weight.mul_(0.1)
            self.fc.weight[:3, :3] += torch.eye(3) * 40.0
            self.fc.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 2.0]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.probabilities:
            unit = images.permute(0, 3, 1, 2)
        else:
            mean = torch.tensor(IMAGENET[0]).reshape(1, 3, 1, 1)
            std = torch.tensor(IMAGENET[1]).reshape(1, 3, 1, 1)
            unit = images * std + mean
        logits = self.fc(self.purity(unit).mean((2, 3)))
        return logits.softmax(1) if self.probabilities else logits
