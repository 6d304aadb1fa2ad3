// The part of picomatch 4 (no bundled types) that exclude.ts uses.
declare module 'picomatch' {
  interface PicomatchOptions { dot?: boolean; basename?: boolean; nocase?: boolean }
  function picomatch(glob: string | readonly string[], options?: PicomatchOptions): (input: string) => boolean;
  export default picomatch;
}
