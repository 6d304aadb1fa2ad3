'use strict';
// hakit's libfuse3 binding: see src/hakit_fuse3.c for what it exports and how a call travels.
module.exports = require('./build/Release/hakit_fuse3.node');
