"""Operating meshes: broker configuration, the local mesh of virtual devices, the hub cluster and
model cards."""
