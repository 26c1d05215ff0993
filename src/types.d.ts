// The C stage, embedded by `bun build --compile` (see src/linux/stage.ts).
declare module "*/bunker-stage" {
  const path: string;
  export default path;
}
