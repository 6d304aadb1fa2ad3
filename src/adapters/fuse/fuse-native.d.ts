// Types for the parts of fuse-native 2.2.6 (CommonJS, no bundled types) that hakit uses.
declare module 'fuse-native' {
  type Callback = (err: Error | null) => void;
  class Fuse {
    constructor(mnt: string, ops: object, opts?: object);
    readonly mnt: string;
    mount(cb: Callback): void;
    unmount(cb: Callback): void;
    static unmount(mnt: string, cb: Callback): void;
  }
  export = Fuse;
}
