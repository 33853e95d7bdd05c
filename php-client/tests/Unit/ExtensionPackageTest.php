<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Client;
use PHPUnit\Framework\TestCase;

/**
 * The extension's sources (php-client/ext/) against its package: one
 * version everywhere, package.xml listing exactly the files `pecl package`
 * must ship, and the arginfo generated from the stub as it is now. Needs
 * no extension loaded.
 */
final class ExtensionPackageTest extends TestCase
{
    private const EXT = __DIR__ . '/../../ext';

    public function testOneVersion(): void
    {
        $header = (string) file_get_contents(self::EXT . '/php_cometbox.h');
        self::assertMatchesRegularExpression('/#define PHP_COMETBOX_VERSION "' . preg_quote(Client::VERSION, '/') . '"/', $header);
        $package = self::package();
        self::assertSame(Client::VERSION, (string) $package->version->release);
        self::assertSame(Client::VERSION, (string) $package->version->api);
    }

    public function testPackageXmlListsEveryFileToShip(): void
    {
        $listed = [];
        foreach (self::package()->contents->dir->file as $file) {
            $listed[] = (string) $file['name'];
        }
        sort($listed);
        $shipped = [];
        foreach (['LICENSE', 'README.md', 'config.m4', '*.c', '*.h', '*.stub.php', 'tests/*.phpt', 'tests/*.inc', 'fuzz/Makefile', 'fuzz/*.c'] as $pattern) {
            foreach (glob(self::EXT . '/' . $pattern) ?: [] as $path) {
                if ($pattern === '*.h' && basename($path) === 'config.h') {
                    continue; // configure's output
                }
                $shipped[] = substr($path, strlen(self::EXT) + 1);
            }
        }
        sort($shipped);

        self::assertSame($shipped, $listed, 'package.xml <contents> and the files in php-client/ext differ');
    }

    public function testTheArginfoIsGeneratedFromTheStubAsItIs(): void
    {
        $stub = str_replace("\r\n", "\n", (string) file_get_contents(self::EXT . '/cometbox.stub.php'));
        $arginfo = (string) file_get_contents(self::EXT . '/cometbox_arginfo.h');

        self::assertStringContainsString('Stub hash: ' . sha1($stub), $arginfo, 'cometbox.stub.php changed: run gen_stub.php on it (see ext/README.md)');
    }

    private static function package(): \SimpleXMLElement
    {
        $xml = simplexml_load_file(self::EXT . '/package.xml');
        self::assertInstanceOf(\SimpleXMLElement::class, $xml);

        return $xml;
    }
}
