import { describe, expect, it } from 'vitest';
import { checkBody, SHAPES } from '../../src/api/validate.js';

describe('API request bodies', () => {
  it('accepts a well-formed body and drops null fields', () => {
    const body = { name: 'web', subnet: null, icc: false, options: { 'com.docker.network.driver.mtu': '1400' } };
    expect(checkBody(body, 'network create', SHAPES.createNetwork)).toEqual({
      name: 'web',
      icc: false,
      options: { 'com.docker.network.driver.mtu': '1400' },
    });
  });

  it.each([
    [[], /must be a JSON object/],
    [{}, /field "name" is required/],
    [{ name: 7 }, /field "name" must be a string/],
    [{ name: 'x', mtu: '1500' }, /field "mtu" must be a number/],
    [{ name: 'x', options: { a: 1 } }, /field "options" must be a record/],
    [{ name: 'x', colour: 'red' }, /unknown field "colour"/],
  ])('refuses %j', (body, message) => {
    expect(() => checkBody(body, 'network create', SHAPES.createNetwork)).toThrow(message);
  });

  it('requires the command of run as a list of strings', () => {
    expect(() => checkBody({ cmd: 'sleep 1' }, 'run', SHAPES.run)).toThrow(/field "cmd" must be a string\[\]/);
    expect(checkBody({ cmd: ['sleep', '1'], ports: ['80'] }, 'run', SHAPES.run)).toEqual({ cmd: ['sleep', '1'], ports: ['80'] });
  });
});
