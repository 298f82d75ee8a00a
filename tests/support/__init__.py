"""Helpers shared by every test suite: real local meshes, on addresses no two meshes share."""
