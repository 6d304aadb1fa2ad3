{
  "targets": [
    {
      "target_name": "hakit_fuse3",
      "sources": ["src/hakit_fuse3.c"],
      "include_dirs": ["/usr/include/fuse3"],
      "libraries": ["-lfuse3", "-lpthread"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
