// A module that exports no service implementations.
export const answer = 42;
