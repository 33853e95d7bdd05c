<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Token;
use PHPUnit\Framework\TestCase;

/**
 * Tokens, against the vectors every implementation shares.
 */
final class TokenTest extends TestCase
{
    /** Shared with the Go and JavaScript suites. */
    private const VECTORS = __DIR__ . '/../../../pkg/token/testdata/vectors.json';

    /** @return iterable<string, array{string, string, int, string}> */
    public function vectors(): iterable
    {
        $json = file_get_contents(self::VECTORS);
        self::assertIsString($json, 'cannot read ' . self::VECTORS);
        $doc = json_decode($json, true, 512, JSON_THROW_ON_ERROR);
        self::assertNotEmpty($doc['vectors']);
        foreach ($doc['vectors'] as $i => $v) {
            yield sprintf('#%d %s', $i, $v['client']) => [$v['secret'], $v['client'], $v['exp'], $v['token']];
        }
    }

    /**
     * @dataProvider vectors
     */
    public function testVectors(string $secret, string $client, int $exp, string $token): void
    {
        self::assertSame($token, Token::mint($secret, $client, $exp));
    }

    public function testTheProtocolDocExample(): void
    {
        self::assertSame('1800000000.OJy6rWDNN4fvMrkOBF1Jtl-qlb24LC065SQGhcG9rjs', Token::mint('s3cret', 'alice', 1800000000));
    }

    /** @return iterable<string, array{string, string, int, string}> */
    public function bad(): iterable
    {
        yield 'empty secret' => ['', 'alice', 1, 'token secret is empty'];
        yield 'bad client' => ['s', 'a/b', 1, 'client id "a/b"'];
        yield 'negative expiry' => ['s', 'alice', -1, 'token expiry -1: want a Unix time, 0 or more'];
    }

    /**
     * @dataProvider bad
     */
    public function testBadInput(string $secret, string $client, int $exp, string $error): void
    {
        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage($error);
        Token::mint($secret, $client, $exp);
    }
}
