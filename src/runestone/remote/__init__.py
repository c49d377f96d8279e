"""The runtime's side of the control plane: enrollment, signed policy pulls, status."""
