"""Triton Python-backend adapter: runs the exported ONNX classifier with onnxruntime.

Outputs: `probability` [N, 1] and `heatmap` [N, 1, H/16, W/16] (a client asks for either).

Built once in initialize(); a bad request gets its own TritonError and the rest of the
batch is still answered. `radflow deploy` copies this file into each version folder.
"""

import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        folder = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("RADFLOW_TRITON_THREADS", "2"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.path.join(folder, "model.onnx"), sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]  # probability, heatmap
        self.label = f"{args['model_name']} v{args['model_version']}"

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                image = pb_utils.get_input_tensor_by_name(request, "image").as_numpy()
                image = np.ascontiguousarray(image, dtype=np.float32)
                if image.ndim != 4 or image.shape[1] != 1:
                    raise ValueError(f"expected image [N, 1, H, W], got {list(image.shape)}")
                results = self.session.run(self.output_names, {self.input_name: image})
                outputs = [pb_utils.Tensor(name, np.ascontiguousarray(value, dtype=np.float32))
                           for name, value in zip(self.output_names, results, strict=True)]
                responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
            except Exception as exc:
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"{self.label}: {exc}")))
        return responses

    def finalize(self):
        self.session = None
