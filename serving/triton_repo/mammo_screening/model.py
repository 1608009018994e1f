"""Triton Python-backend adapter: runs the exported ONNX classifier with onnxruntime.

Outputs: `probability` [N, 1] and `heatmap` [N, 1, H/16, W/16] (a client asks for either).

Built once in initialize(); the requests Triton's dynamic batcher groups run through
onnxruntime as one array; a bad request gets its own TritonError and the rest of the
batch is still answered. `radflow deploy` copies this file into each version folder.
"""

import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from pipelines.modelfiles.device import onnx_providers


class TritonPythonModel:
    def initialize(self, args):
        folder = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("RADFLOW_TRITON_THREADS", "2"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.path.join(folder, "model.onnx"), sess_options=options,
            # the CUDA provider when this onnxruntime has one and RADFLOW_DEVICE allows it
            providers=onnx_providers(os.environ.get("RADFLOW_DEVICE", "auto")),
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]  # probability, heatmap
        self.label = f"{args['model_name']} v{args['model_version']}"

    def execute(self, requests):
        """One onnxruntime run over every valid request of the batch Triton formed; a bad
        request gets its own error and the others are still answered."""
        images, errors = [], {}
        for i, request in enumerate(requests):
            try:
                image = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
                image = np.ascontiguousarray(image, dtype=np.float32)
                if image.ndim != 4 or image.shape[1] != 1:
                    raise ValueError(f"expected image [N, 1, H, W], got {list(image.shape)}")
                images.append((i, image))
            except Exception as exc:
                errors[i] = exc
        outputs = {}
        for shape in {img.shape[1:] for _, img in images}:  # one run per image size
            group = [(i, img) for i, img in images if img.shape[1:] == shape]
            try:
                batch = np.concatenate([img for _, img in group]) if len(group) > 1 else group[0][1]
                results = self.session.run(self.output_names, {self.input_name: batch})
            except Exception as exc:
                errors.update({i: exc for i, _ in group})
                continue
            start = 0
            for i, img in group:
                outputs[i] = [r[start:start + len(img)] for r in results]
                start += len(img)
        responses = []
        for i in range(len(requests)):
            if i in errors:
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"{self.label}: {errors[i]}")))
                continue
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value, dtype=np.float32))
                       for name, value in zip(self.output_names, outputs[i], strict=True)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self):
        self.session = None
